"""`python -m worker.training predict`: reconstruct a scan with a trained model bundle.

    python -m worker.training predict --bundle JOB/model_bundle.pt --data scan.npz [--out R.npz]

The data file follows the study contract, except that `objectGuess` may be absent: no
ground truth is needed. Its amplitudes are normalised by their own statistics, as the
training split's were, so a scan in other units than the training data still gives the
network the inputs it learned on. Every pattern is predicted (gridsize 2: one group seeded
at every position) and the patches are stitched as the job stitched its test split, unless
--stitching says otherwise.

The output NPZ holds `reconstruction` (complex64, the canvas), `amplitude` and `phase`
(float32), `coverage` (float32, the summed stitching weight; 0 where nothing was
reconstructed), `xcoords`/`ycoords` (positions on that canvas), `probeGuess` (the file's)
and `_metadata` (JSON: bundle and its SHA-256, data file, architecture, stitching, canvas
origin, and what was converted while reading the file).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from app.study.contract import ContractError, SplitData
from app.study.npz import NpzWriter
from worker.training.bundle import load_bundle, sha256_of
from worker.training.data import input_scale, make_samples, positions_xy
from worker.training.evaluate import (
    ALIGN_ITERATIONS,
    predict_patches,
    stitch,
    stitch_weight,
    stitching_record,
)
from worker.training.grouping import covering_groups
from worker.training.h5_inputs import load_input
from worker.training.module import LitPtychoPINN

STITCHINGS = ("ours", "ptychopinn")


@dataclass(frozen=True)
class Prediction:
    """A stitched reconstruction on its canvas, and how it was made."""

    image: np.ndarray  # complex128 (H, W)
    coverage: np.ndarray  # float64 (H, W)
    positions: np.ndarray  # (n, 2) x, y on the canvas
    metadata: dict[str, Any] = field(default_factory=dict)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m worker.training predict", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--bundle", type=Path, required=True, help="model_bundle.pt of a job")
    parser.add_argument(
        "--data", type=Path, required=True, help="scan: NPZ or CXI (no ground truth needed)"
    )
    parser.add_argument(
        "--product", type=Path, help="Ptychodus product file (.h5): probe and positions"
    )
    parser.add_argument("--out", type=Path, help="output NPZ (default: DATA_reconstruction.npz)")
    parser.add_argument("--stitching", choices=STITCHINGS, help="default: the job's")
    parser.add_argument("--stitch-crop", type=int, help="default: the job's (20)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda[:k]")
    return parser.parse_args(argv)


def canvas(split: SplitData, n: int) -> tuple[tuple[int, int], np.ndarray]:
    """The object's shape and (x, y) origin offset: the file's object, else the scan's extent."""
    xy = positions_xy(split)
    if split.has_object:
        return (int(split.obj.shape[0]), int(split.obj.shape[1])), np.zeros(2)
    origin = np.floor(xy.min(axis=0) - n / 2)
    extent = np.ceil(xy.max(axis=0) - origin + n / 2).astype(int) + 1
    return (int(extent[1]), int(extent[0])), origin


def reconstruct_scan(
    model: LitPtychoPINN,
    job: dict[str, Any],
    split: SplitData,
    *,
    stitching: str,
    crop: int,
    batch_size: int = 64,
) -> Prediction:
    """Predict every position of `split` with `model` and stitch the patches."""
    n = int(model.hparams["n"])
    if n != split.N:
        raise ContractError(
            split.path, "diffraction", f"patterns of size {n} (the model's)", f"size {split.N}"
        )
    gridsize = int(model.hparams["gridsize"])
    if split.n < gridsize**2:
        raise ContractError(
            split.path, "diffraction", f"at least {gridsize**2} patterns", str(split.n)
        )
    model.hparams["input_scale"] = input_scale(split.diffraction, model.hparams["architecture"])
    groups = covering_groups(
        positions_xy(split),
        gridsize=gridsize,
        neighbor_count=int(job.get("neighbor_count", 7)),
        seed=int(job.get("seed", 123)),
    )
    samples = make_samples(split, groups)
    patches = predict_patches(model, samples.diffraction, batch_size=batch_size)
    shape, origin = canvas(split, n)
    positions = samples.positions.reshape(-1, 2) - origin
    weight = stitch_weight(stitching, split.probe, crop)
    align = ALIGN_ITERATIONS if stitching == "ours" else 0
    image, coverage = stitch(
        patches.reshape(-1, n, n), positions, shape, weight, align_iterations=align
    )
    metadata = {
        "architecture": model.hparams["architecture"],
        "inputs": model.hparams["inputs"],
        "gridsize": gridsize,
        "N": n,
        "stitching": stitching_record(stitching, crop),
        "canvas_origin_xy": [float(v) for v in origin],
        "data_notes": list(split.notes),
        "has_ground_truth": split.has_object,
    }
    return Prediction(image, coverage, positions_xy(split) - origin, metadata)


def write_prediction(path: Path, prediction: Prediction, probe: np.ndarray) -> None:
    with NpzWriter(path) as writer:
        writer.add("reconstruction", prediction.image.astype(np.complex64))
        writer.add("amplitude", np.abs(prediction.image).astype(np.float32))
        writer.add("phase", np.angle(prediction.image).astype(np.float32))
        writer.add("coverage", prediction.coverage.astype(np.float32))
        writer.add("xcoords", prediction.positions[:, 0])
        writer.add("ycoords", prediction.positions[:, 1])
        writer.add("probeGuess", probe)
        writer.add_metadata(prediction.metadata)


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def main(argv: Sequence[str] | None = None) -> int:
    """Reconstruct one scan; exit 2 on a missing or broken file, with the file in the message."""
    args = parse_args(argv)
    out = args.out or args.data.with_name(args.data.stem + "_reconstruction.npz")
    try:
        model, job = load_bundle(args.bundle)
        split = load_input(args.data, product=args.product, object_required=False)
        stitching = args.stitching or job.get("stitching", "ours")
        crop = args.stitch_crop or int(job.get("stitch_crop", 20))
        with torch.no_grad():
            prediction = reconstruct_scan(
                model.to(_device(args.device)),
                job,
                split,
                stitching=stitching,
                crop=crop,
                batch_size=args.batch_size,
            )
    except (ContractError, FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    prediction.metadata.update(
        {
            "bundle": str(args.bundle),
            "bundle_sha256": sha256_of(args.bundle),
            "data": str(args.data),
        }
    )
    write_prediction(out, prediction, split.probe)
    for note in split.notes:
        print(f"{args.data.name}: {note}", file=sys.stderr)
    covered = float(np.mean(prediction.coverage > 0))
    print(
        f"reconstruction: {out} ({prediction.image.shape[0]}×{prediction.image.shape[1]}, "
        f"{covered:.0%} covered)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
