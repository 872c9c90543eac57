"""Phase C files: the split NPZs with their `_metadata`, and `run_manifest.json`."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.core.files import utc_timestamp
from app.study.blocks import ProgressCallback, block_patterns, chunk_slices, ordered
from app.study.design import dose_dirname
from app.study.forward import bilinear_patches
from app.study.noise import NOISE_STREAM, intensity_scale, noise_seed, poisson_amplitudes
from app.study.npz import NpzWriter
from app.study.scene import Scene, SimulationConfig

GENERATOR = "ptychojobs.study.simulate"
GENERATOR_VERSION = "1.0"
SPLITS = ("train", "test")
GEOMETRY = (
    "position (x, y) = centre of the N×N patch in object pixels; patch pixel (i, j) samples "
    "the object at (y - N/2 + i, x - N/2 + j), bilinear between pixels"
)
_AHEAD = 8  # blocks computed ahead of the writer


@dataclass(frozen=True)
class DoseSplit:
    """What one split file of one dose needs: the scene's slice, its intensity and scale."""

    config: SimulationConfig
    scene: Scene
    intensity: np.ndarray  # the whole noiseless buffer, float32 (n, N, N)
    dose: float
    scale: float
    split: str

    @property
    def block(self) -> slice:
        return self.scene.split_slice(self.split)


def write_dose(
    root: Path,
    config: SimulationConfig,
    scene: Scene,
    intensity: np.ndarray,
    energies: np.ndarray,
    dose: float,
    pool: Executor,
    progress: ProgressCallback | None,
) -> dict[str, Any]:
    """Draw one dose's noise and write its train and test files; return its manifest entry."""
    directory = root / dose_dirname(dose)
    scale = intensity_scale(energies, dose)
    parts = [DoseSplit(config, scene, intensity, dose, scale, split) for split in SPLITS]
    arrays_per_file = 2 if config.write_patches else 1  # diffraction, and Y
    patterns = block_patterns(config.patch_size)
    total_blocks = arrays_per_file * len(chunk_slices(scene.n_train, patterns))
    total_blocks += arrays_per_file * len(chunk_slices(scene.n - scene.n_train, patterns))
    done, lock = [0], threading.Lock()

    def tick() -> None:
        with lock:
            done[0] += 1
            if progress is not None:
                progress(f"dose {dose:g}: noise + write", done[0], total_blocks)

    def write(part: DoseSplit) -> int:
        return _write_split(directory / f"patched_{part.split}.npz", part, pool, tick)

    # Both files at once: checksums and disk writes release the GIL and overlap the drawing.
    with ThreadPoolExecutor(max_workers=len(parts)) as writers:
        totals = list(writers.map(write, parts))
    entry: dict[str, Any] = {
        "dose": dose,
        "dir": directory.name,
        "intensity_scale": scale,
        "mean_counts": sum(totals) / scene.n,
    }
    for part in parts:
        entry[part.split] = f"{directory.name}/patched_{part.split}.npz"
        entry[f"n_{part.split}"] = part.block.stop - part.block.start
    return entry


def _write_split(path: Path, part: DoseSplit, pool: Executor, tick: Callable[[], None]) -> int:
    scene, block = part.scene, part.block
    x, y = scene.xcoords[block], scene.ycoords[block]
    intensity = part.intensity[block]
    n, size = len(x), scene.probe.shape[0]
    split_index = SPLITS.index(part.split)
    patterns = block_patterns(size)
    blocks = chunk_slices(n, patterns)
    totals: list[int] = []

    def noisy(b: slice) -> tuple[np.ndarray, int]:
        seed = noise_seed(part.config.seed, part.dose, split_index, b.start // patterns)
        return poisson_amplitudes(intensity[b], part.scale, seed)

    def amplitudes() -> Iterator[np.ndarray]:
        for values, total in ordered(pool, noisy, blocks, ahead=_AHEAD):
            totals.append(total)
            yield values

    with NpzWriter(path) as writer:
        writer.add_chunks("diffraction", (n, size, size), np.float32, _counted(amplitudes(), tick))
        writer.add("xcoords", x)
        writer.add("ycoords", y)
        writer.add("xcoords_start", x)
        writer.add("ycoords_start", y)
        writer.add("scan_index", np.zeros(n, dtype=np.int64))
        writer.add("probeGuess", scene.probe)
        writer.add("objectGuess", scene.obj)
        if part.config.write_patches:
            # Y is recomputed block by block while writing, so it never sits whole in memory.
            patches = ordered(
                pool,
                lambda b: bilinear_patches(scene.obj, x[b], y[b], size),
                blocks,
                ahead=_AHEAD,
            )
            writer.add_chunks("Y", (n, size, size), np.complex64, _counted(patches, tick))
        writer.add_metadata(_metadata(part, sum(totals) / n, split_index))
    return sum(totals)


def _counted(blocks: Iterator[np.ndarray], tick: Callable[[], None]) -> Iterator[np.ndarray]:
    """Pass blocks through, ticking once the writer has taken each one."""
    for block in blocks:
        yield block
        tick()


def _metadata(part: DoseSplit, mean_counts: float, split_index: int) -> dict[str, Any]:
    config, scene, block = part.config, part.scene, part.block
    return {
        "generator": GENERATOR,
        "generator_version": GENERATOR_VERSION,
        "dose": part.dose,
        "intensity_scale": part.scale,
        "mean_counts_per_pattern": mean_counts,
        "N": config.patch_size,
        "seed": config.seed,
        "noise_seed": {
            "entropy": config.seed,
            "spawn_key": [NOISE_STREAM, int(part.dose), split_index, "block"],
            "block_patterns": block_patterns(config.patch_size),
        },
        "split": part.split,
        "split_rule": "train = y < ymin + 0.5 * (ymax - ymin)",
        "split_midpoint": scene.midpoint,
        "n_positions": block.stop - block.start,
        "n_positions_total": scene.n,
        "scan": {"kind": config.scan, "n_positions": config.n_positions},
        "object_shape": list(scene.obj.shape),
        "probe": scene.probe_source,
        "object": scene.object_source,
        "geometry": GEOMETRY,
        "diffraction": "sqrt(counts) / intensity_scale, fftshifted",
    }


def run_manifest(
    root: Path, config: SimulationConfig, scene: Scene, datasets: list[dict[str, Any]]
) -> dict[str, Any]:
    """The content of `run_manifest.json`: settings, split, and one entry per dose."""
    settings = asdict(config)
    settings["probe_path"] = None if config.probe_path is None else str(config.probe_path)
    settings["object_path"] = None if config.object_path is None else str(config.object_path)
    settings["doses"] = list(config.doses)
    return {
        "timestamp": utc_timestamp(),
        "generator": GENERATOR,
        "generator_version": GENERATOR_VERSION,
        "phase_c_root": str(root.resolve()),
        "config": settings,
        "probe": scene.probe_source,
        "object": scene.object_source,
        "split_midpoint": scene.midpoint,
        "n_train": scene.n_train,
        "n_test": scene.n - scene.n_train,
        "geometry": GEOMETRY,
        "datasets": datasets,
    }
