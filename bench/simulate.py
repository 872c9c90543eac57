"""Benchmark: Phase C simulation of the fly64 preset for one dose.

1. `simulate_phase_c` end to end in a child process (so its peak RSS is its own), writing
   both split files with `Y` to a temporary folder: wall time, CPU time, peak RSS.
2. Its compute stages alone (forward model, Poisson noise), in this process.
3. A straightforward per-pattern numpy loop doing the same compute on the same scene:
   slice and interpolate the patch, FFT, |.|², then Poisson. It runs on a subset and is
   scaled to all 10,304 patterns at its measured per-pattern rate. (Its files are not
   timed: writing a small subset says little about writing 2 GB.)

Each measurement is the best of --repeat runs (default 2, --quick 1): the machine may be
shared, and the best run is the one least disturbed. The load average is printed too.

    .venv/bin/python bench/simulate.py [--quick] [--dose 1e5] [--subset 1000] [--repeat 2]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.study.blocks import block_patterns, chunk_slices, default_workers
from app.study.noise import intensity_scale, noise_seed, poisson_amplitudes
from app.study.simulate import (
    PRESETS,
    Scene,
    make_scene,
    noiseless_intensities,
    simulate_phase_c,
)

WALL_TARGET_S = 20.0
RSS_TARGET_MB = 3 * 1024
STUDY_GPU_S = 65.0  # the study's own generator, one dose, RTX 3090
Times = dict[str, float]


class Clock:
    """Wall time and this process's CPU time (all threads) of a `with` block."""

    def __enter__(self) -> Clock:
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall_s = time.perf_counter() - self._wall
        self.cpu_s = time.process_time() - self._cpu


def best(runs: int, measure: Callable[[], Times]) -> Times:
    """Each figure's best (smallest) value over `runs` runs."""
    results = [measure() for _ in range(runs)]
    return {key: min(r[key] for r in results) for key in results[0]}


def run_child(dose: float, out: Path) -> Times:
    """The whole simulator, writing both files (run inside the child process)."""
    config = dataclasses.replace(PRESETS["fly64"], doses=(dose,))
    with Clock() as clock:
        simulate_phase_c(config, out)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "wall_s": clock.wall_s,
        "cpu_s": clock.cpu_s,
        "bytes": sum(p.stat().st_size for p in out.rglob("*.npz")),
        "peak_rss_mb": usage.ru_maxrss / 1024,
    }


def run_simulator(dose: float) -> Times:
    """simulate_phase_c in a child process, so its peak RSS is its own."""
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, __file__, "--child", "--dose", str(dose), "--out", tmp]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        result: Times = json.loads(output.strip().splitlines()[-1])
    return result


def run_vectorised(scene: Scene, dose: float) -> Times:
    """The simulator's own compute stages, without files: forward model, then noise."""
    with ThreadPoolExecutor(max_workers=default_workers()) as pool:
        with Clock() as forward:
            intensity, energies = noiseless_intensities(scene, pool)
        scale = intensity_scale(energies, dose)

        def noisy(block: slice) -> int:
            seed = noise_seed(0, dose, 0, block.start)
            return poisson_amplitudes(intensity[block], scale, seed)[1]

        with Clock() as noise:
            blocks = chunk_slices(len(intensity), block_patterns(intensity.shape[1]))
            list(pool.map(noisy, blocks))
    return {
        "forward_s": forward.wall_s,
        "forward_cpu_s": forward.cpu_s,
        "noise_s": noise.wall_s,
        "noise_cpu_s": noise.cpu_s,
    }


def _loop_patch(scene: Scene, obj: np.ndarray, k: int, size: int) -> np.ndarray:
    top, left = scene.ycoords[k] - size / 2, scene.xcoords[k] - size / 2
    row = min(math.floor(top), obj.shape[0] - size - 1)
    col = min(math.floor(left), obj.shape[1] - size - 1)
    fy, fx = top - row, left - col
    w = obj[row : row + size + 1, col : col + size + 1]
    return (
        (1 - fy) * (1 - fx) * w[:-1, :-1]
        + (1 - fy) * fx * w[:-1, 1:]
        + fy * (1 - fx) * w[1:, :-1]
        + fy * fx * w[1:, 1:]
    )


def run_loop(scene: Scene, dose: float, subset: int) -> Times:
    """One pattern at a time: patch, FFT, |.|², then Poisson per pattern."""
    obj, probe = scene.obj.astype(np.complex128), scene.probe.astype(np.complex128)
    size = probe.shape[0]
    intensity = np.empty((subset, size, size))
    patches = np.empty((subset, size, size), dtype=np.complex64)
    with Clock() as forward:
        for k in range(subset):
            patches[k] = patch = _loop_patch(scene, obj, k, size)
            far = np.fft.fftshift(np.fft.fft2(patch * probe, norm="ortho"))
            intensity[k] = np.abs(far) ** 2
    scale = math.sqrt(dose / intensity.sum(axis=(1, 2)).mean())
    rng = np.random.default_rng(0)
    diffraction = np.empty((subset, size, size), dtype=np.float32)
    with Clock() as noise:
        for k in range(subset):
            diffraction[k] = np.sqrt(rng.poisson(intensity[k] * scale**2)) / scale
    return {
        "forward_s": forward.wall_s,
        "forward_cpu_s": forward.cpu_s,
        "noise_s": noise.wall_s,
        "noise_cpu_s": noise.cpu_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one run each, loop on 300")
    parser.add_argument("--dose", type=float, default=1e5, help="the one dose (default 1e5)")
    parser.add_argument("--subset", type=int, default=1000, help="patterns for the loop")
    parser.add_argument("--repeat", type=int, default=2, help="runs per measurement")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_child(args.dose, args.out)))
        return
    n = PRESETS["fly64"].n_positions
    subset, runs = (300, 1) if args.quick else (min(args.subset, n), max(1, args.repeat))
    load_before = os.getloadavg()[0]
    full = best(runs, lambda: run_simulator(args.dose))
    scene = make_scene(PRESETS["fly64"])
    fast = best(runs, lambda: run_vectorised(scene, args.dose))
    loop = best(runs, lambda: run_loop(scene, args.dose, subset))
    scaled = {key: value * n / subset for key, value in loop.items()}
    report(full, fast, scaled, args.dose, (subset, runs), (load_before, os.getloadavg()[0]))


def report(
    full: Times,
    fast: Times,
    loop: Times,
    dose: float,
    sizes: tuple[int, int],
    load: tuple[float, float],
) -> None:
    n, cores = PRESETS["fly64"].n_positions, default_workers()
    print(f"fly64 preset: {n} patterns at N = 128, one dose ({dose:g}); {cores} CPU cores; "
          f"load average {load[0]:.1f} → {load[1]:.1f}; best of {sizes[1]} run(s)")  # fmt: skip
    print(f"per-pattern loop timed on the first {sizes[0]} patterns, scaled ×{n / sizes[0]:.2f}")
    print("CPU = process time summed over threads\n")
    head = ("stage", "vectorised s", "CPU s", "loop s", "CPU s", "loop/vec")
    print(f"{head[0]:<24}" + "".join(f"{h:>13}" for h in head[1:]))
    for label, key in (("forward model", "forward"), ("Poisson noise", "noise"), ("total", "")):
        keys = [key] if key else ["forward", "noise"]
        vw, vc, lw, lc = (
            sum(times[f"{k}{suffix}"] for k in keys)
            for times, suffix in ((fast, "_s"), (fast, "_cpu_s"), (loop, "_s"), (loop, "_cpu_s"))
        )
        print(f"{label:<24}{vw:>13.2f}{vc:>13.2f}{lw:>13.2f}{lc:>13.2f}{lw / vw:>12.1f}×")
    wall, cpu, rss = full["wall_s"], full["cpu_s"], full["peak_rss_mb"]
    label = f"end to end, {full['bytes'] / 1e9:.2f} GB"
    print(f"{label:<24}{wall:>13.2f}{cpu:>13.2f}{'-':>13}{'-':>13}")
    print("(end to end = simulate_phase_c writing both split files with Y)\n")
    print(f"simulate_phase_c wall {wall:.2f} s (target ≤ {WALL_TARGET_S:.0f} s: "
          f"{'PASS' if wall <= WALL_TARGET_S else 'FAIL'}), peak RSS {rss:.0f} MB "
          f"(target ≤ {RSS_TARGET_MB} MB: {'PASS' if rss <= RSS_TARGET_MB else 'FAIL'}), "
          f"CPU {cpu:.1f} s = {cpu / cores:.1f} s per core")  # fmt: skip
    print(f"reference: the study's generator took ~{STUDY_GPU_S:.0f} s per dose on an RTX 3090 "
          f"({STUDY_GPU_S / wall:.1f}× this wall)")  # fmt: skip


if __name__ == "__main__":
    main()
