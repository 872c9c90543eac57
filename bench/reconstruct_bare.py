"""pty-chi LSQML, bare against our engine (worker.reconstruction), same data and epochs.

    .venv/bin/python bench/reconstruct_bare.py                       # demo test split, 20 epochs
    .venv/bin/python bench/reconstruct_bare.py --input F.npz --epochs 100 --threads 1,2
    .venv/bin/python bench/reconstruct_bare.py --device cuda --threads 1

For every thread count, two child processes run one after the other on the same split:
- bare: a plain pty-chi script (numpy and ptychi only: the split's arrays converted by
  hand, the task built and run for all epochs in one call); timed from building the task
  to the end of its run;
- ours: `reconstruct()` as a worker calls it (chunks of `--chunk-epochs`, the train.log and
  progress lines, the scoring, the npz, product file and figure); its epochs alone, its
  engine part (pty-chi's first import in the process, the task's build and every chunk)
  and its whole wall time.
Each child starts cold (imports, no warm caches shared), so neither side profits from
running second. Printed: wall time and cost per epoch of each, and ours / bare for the
engine part and for the whole job. Ratios are against the baseline measured in the same
run; nothing here asserts a timing. Without --input the demo study's dose-1e5 test split is
simulated first (524 positions, N 64).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

MARGIN = 2  # as worker.reconstruction.inputs: the object buffer's padding


def bare(path: Path, epochs: int, batch_size: int, device: str) -> dict[str, float]:
    """A plain pty-chi LSQML run of the split; the timed part uses numpy and ptychi only."""
    import numpy as np
    import ptychi.api as api
    from ptychi.api.task import PtychographyTask

    with np.load(path, allow_pickle=False) as npz:
        amplitudes = npz["diffraction"].astype(np.float64)
        probe, obj = npz["probeGuess"], npz["objectGuess"]
        x, y = npz["xcoords"].astype(np.float64), npz["ycoords"].astype(np.float64)
        scale = float(json.loads(str(npz["_metadata"]))["intensity_scale"])
    n = probe.shape[0]
    started = time.perf_counter()
    top = max(int(np.floor(y.min() - n / 2)), 0)
    left = max(int(np.floor(x.min() - n / 2)), 0)
    bottom = min(int(np.ceil(y.max() + n / 2)) + 1, obj.shape[0])
    right = min(int(np.ceil(x.max() + n / 2)) + 1, obj.shape[1])
    options = api.LSQMLOptions()
    options.object_options.determine_position_origin_coords_by = (
        api.ObjectPosOriginCoordsMethods.SPECIFIED
    )
    options.object_options.position_origin_coords = np.array(
        [MARGIN - top - 0.5, MARGIN - left - 0.5]
    )
    options.object_options.remove_object_probe_ambiguity.enabled = False
    options.probe_options.optimizable = False
    recon = options.reconstructor_options
    recon.rescale_probe_intensity_in_first_epoch = False
    recon.num_epochs, recon.batch_size, recon.random_seed = epochs, batch_size, 123
    recon.default_device = api.Devices.GPU if device == "cuda" else api.Devices.CPU
    shape = (bottom - top + 2 * MARGIN, right - left + 2 * MARGIN)
    task = PtychographyTask(
        options,
        diffraction_data=((amplitudes * scale) ** 2).astype(np.float32),
        object_data=np.ones((1, *shape), dtype=np.complex64),
        probe_data=(probe * scale / n).astype(np.complex64)[None, None],
        probe_position_x_px=x,
        probe_position_y_px=y,
        opr_mode_weights_data=np.ones((len(x), 1), dtype=np.float32),
    )
    built = time.perf_counter()
    task.run()
    ran = time.perf_counter()
    return {"build_s": built - started, "run_s": ran - built, "engine_s": ran - started}


def ours(path: Path, epochs: int, batch_size: int, device: str, chunk: int) -> dict[str, float]:
    """reconstruct() as a worker runs it, into a throwaway folder."""
    import torch

    from worker.reconstruction import ReconstructConfig, reconstruct

    accelerator = "gpu" if device == "cuda" else "cpu"
    with tempfile.TemporaryDirectory() as out:
        config = ReconstructConfig(
            path,
            Path(out),
            epochs=epochs,
            batch_size=batch_size,
            accelerator=accelerator,
            threads=torch.get_num_threads(),
            chunk_epochs=chunk,
        )
        started = time.perf_counter()
        result = reconstruct(config)
        wall = time.perf_counter() - started
    return {
        "engine_s": result["engine_s"],
        "epoch_s": result["epoch_s"],
        "wall_s": wall,
        "phase_corr": _corr(result),
    }


def _corr(result: dict[str, Any]) -> float:
    return float(result["metrics"]["phase_correlation"])


def child(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.child_threads)
    if args.child == "bare":
        report = bare(args.input, args.epochs, args.batch_size, args.device)
    else:
        report = ours(args.input, args.epochs, args.batch_size, args.device, args.chunk_epochs)
    print(json.dumps(report))


def spawn(kind: str, threads: int, args: argparse.Namespace) -> dict[str, float]:
    argv = [sys.executable, __file__, "--child", kind, "--child-threads", str(threads)]
    argv += ["--input", str(args.input), "--epochs", str(args.epochs)]
    argv += ["--batch-size", str(args.batch_size), "--device", args.device]
    argv += ["--chunk-epochs", str(args.chunk_epochs)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{kind} with {threads} thread(s) failed:\n{done.stderr[-3000:]}")
    report: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return report


def demo_split(root: Path) -> Path:
    from app.study.demo_data import make_demo_data

    phase_c, _ = make_demo_data(root, doses=(1e5,))
    return phase_c / "dose_100000" / "patched_test.npz"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", type=Path, help="split NPZ; default: the demo's test split")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=96)
    parser.add_argument("--threads", default="1,2", help="comma-separated torch thread counts")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--chunk-epochs", type=int, default=1, help="ours: epochs per chunk")
    parser.add_argument("--child", choices=("bare", "ours"), help=argparse.SUPPRESS)
    parser.add_argument("--child-threads", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args)
        return
    with tempfile.TemporaryDirectory() as scratch:
        if args.input is None:
            args.input = demo_split(Path(scratch))
        load = os.getloadavg()[0]
        print(
            f"input {args.input}, {args.epochs} epochs, batch {args.batch_size}, {args.device}, "
            f"chunks of {args.chunk_epochs}, load average {load:.2f}"
        )
        for threads in (int(t) for t in args.threads.split(",")):
            b, o = spawn("bare", threads, args), spawn("ours", threads, args)
            print(
                f"threads {threads}: bare {b['engine_s']:.2f} s (build {b['build_s']:.2f} s, "
                f"{b['run_s'] / args.epochs:.3f} s/epoch) | ours engine {o['engine_s']:.2f} s "
                f"({o['epoch_s']:.3f} s/epoch), whole job {o['wall_s']:.2f} s, "
                f"phase corr {o['phase_corr']:.3f} | ours/bare per epoch "
                f"{o['epoch_s'] * args.epochs / b['run_s']:.3f}, engine "
                f"{o['engine_s'] / b['engine_s']:.3f}, job {o['wall_s'] / b['engine_s']:.3f}"
            )


if __name__ == "__main__":
    main()
