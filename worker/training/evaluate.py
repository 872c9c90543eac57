"""Predict the test split, stitch the patches into an object image, score it, draw it.

Two stitchings: ours (each patch weighted by |probe|², per-patch phase offsets aligned
first) and PtychoPINN's (`reassemble_position`: only each patch's central M×M pixels,
uniform weights, no alignment; M = 20 as in its compare_models).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from worker.training.config import TrainConfig
from worker.training.data import EVAL_BATCH_SIZE, PtychoDataModule, ground_truth_patches
from worker.training.metrics import align_phase, compare
from worker.training.module import LitPtychoPINN
from worker.training.physics import shift_patches

# Pixels whose summed stitching weight is below this share of the probe's peak weight were
# barely illuminated: they are left out of the pixel metrics.
COVERAGE_FRACTION = 0.1
# Rounds of per-patch phase-offset alignment when stitching (see `stitch`).
ALIGN_ITERATIONS = 5


@dataclass(frozen=True)
class Reconstruction:
    """A stitched reconstruction and the ground truth, cropped to the scanned region."""

    rec: np.ndarray  # complex (h, w)
    gt: np.ndarray  # complex (h, w)
    mask: np.ndarray  # bool (h, w): pixels the scan illuminated


@torch.no_grad()
def predict_patches(
    model: LitPtychoPINN, diffraction: np.ndarray, *, batch_size: int = 64
) -> np.ndarray:
    """Run the network over (S, C, N, N) amplitudes → complex64 (S, C, N, N) patches."""
    was_training = model.training
    model.eval()
    device = model.probe.device
    outputs = []
    for start in range(0, len(diffraction), batch_size):
        batch = torch.from_numpy(diffraction[start : start + batch_size]).to(device)
        outputs.append(model(batch).cpu())
    model.train(was_training)
    return torch.cat(outputs).numpy()


@torch.no_grad()
def reference_loss(model: LitPtychoPINN, data: PtychoDataModule, which: str = "test") -> float:
    """Loss of the ground-truth patches on `which` samples ("test" or "val"): the loss a
    perfect reconstruction would score under the model's current physics."""
    samples = data.test_samples if which == "test" else data.val_samples
    split = data.test_split if which == "test" else data.train_split
    if samples.size == 0:
        return float("nan")
    truth = ground_truth_patches(split)
    device = model.probe.device
    weighted = 0.0
    for start in range(0, samples.size, EVAL_BATCH_SIZE):
        block = slice(start, start + EVAL_BATCH_SIZE)
        patches = torch.from_numpy(truth[samples.indices[block]]).to(device)
        offsets = torch.from_numpy(samples.offsets[block]).to(device)
        diffraction = torch.from_numpy(samples.diffraction[block]).to(device)
        loss = model.loss(model.predicted_amplitude(patches, offsets), diffraction)
        weighted += float(loss) * len(patches)
    return weighted / samples.size


def stitch(
    patches: np.ndarray,
    positions: np.ndarray,
    shape: tuple[int, int],
    weight: np.ndarray,
    *,
    align_iterations: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted average of (P, N, N) patches centred at (P, 2) positions (x, y) on an image.

    Same geometry as the simulator: patch pixel (i, j) lies at (y - N/2 + i, x - N/2 + j);
    sub-pixel parts use the physics' linear shift. A constant phase factor on one pattern's
    patch leaves its diffraction unchanged, so a network may return each patch with its own
    phase offset; `align_iterations` rounds first rotate every patch to agree with its
    neighbours on the mosaic (no ground truth involved). Returns (image, summed weight).
    """
    n = patches.shape[-1]
    corner = positions[:, ::-1] - n / 2  # (row, col) of each patch's pixel (0, 0)
    whole = np.floor(corner).astype(int)
    frac = torch.from_numpy((corner - whole)[:, ::-1].copy())  # back to (x, y) shifts
    padded = np.zeros((len(patches), 2, n + 1, n + 1), dtype=np.complex128)
    padded[:, 0, :n, :n] = patches * weight
    padded[:, 1, :n, :n] = weight
    moved = shift_patches(torch.from_numpy(padded), frac).numpy()
    values, weights = moved[:, 0], moved[:, 1].real
    windows = [_window(row, col, n + 1, shape) for row, col in whole]
    if align_iterations:
        values = _align_offsets(values, windows, shape, align_iterations)
    total = _accumulate(weights, windows, shape).real
    image = _accumulate(values, windows, shape) / np.where(total > 0, total, 1.0)
    return image, total


Window = tuple[tuple[slice, slice], tuple[slice, slice]]


def _window(row: int, col: int, size: int, shape: tuple[int, int]) -> Window:
    """(image slices, patch slices) of a size×size patch with its corner at (row, col)."""
    r0, c0 = max(row, 0), max(col, 0)
    r1, c1 = min(row + size, shape[0]), min(col + size, shape[1])
    return (slice(r0, r1), slice(c0, c1)), (slice(r0 - row, r1 - row), slice(c0 - col, c1 - col))


def _align_offsets(
    values: np.ndarray, windows: list[Window], shape: tuple[int, int], sweeps: int
) -> np.ndarray:
    """Rotate each weighted patch to the phase of the mosaic of all the others, in sweeps.

    Patches are visited one after another (Gauss-Seidel), each seeing its neighbours'
    latest rotation, which converges faster than updating them all at once.
    """
    values = values.copy()
    mosaic = _accumulate(values, windows, shape)
    for _ in range(sweeps):
        for value, (target, local) in zip(values, windows, strict=True):
            mine = value[local]
            others = mosaic[target] - mine
            turn = np.exp(1j * np.angle(np.vdot(mine, others)))
            value *= turn
            mosaic[target] = others + value[local]
    return values


def _accumulate(values: np.ndarray, windows: list[Window], shape: tuple[int, int]) -> np.ndarray:
    image = np.zeros(shape, dtype=values.dtype)
    for value, (target, local) in zip(values, windows, strict=True):
        image[target] += value[local]
    return image


def scanned_box(positions: np.ndarray, shape: tuple[int, int]) -> tuple[slice, slice]:
    """Rows and columns spanned by the scan positions (patch centres), inside the image."""
    x, y = positions[:, 0], positions[:, 1]
    rows = slice(max(math.floor(y.min()), 0), min(math.ceil(y.max()) + 1, shape[0]))
    cols = slice(max(math.floor(x.min()), 0), min(math.ceil(x.max()) + 1, shape[1]))
    return rows, cols


def stitch_weight(stitching: str, probe: np.ndarray, crop: int) -> np.ndarray:
    """Per-pixel patch weight: |probe|² (ours) or the central crop×crop square (ptychopinn)."""
    n = probe.shape[-1]
    if stitching == "ours":
        return np.abs(probe.astype(np.complex128)) ** 2
    if not 0 < crop <= n:
        raise ValueError(f"stitch crop must be in 1..{n}, got {crop}")
    weight = np.zeros((n, n))
    start = n // 2 - crop // 2
    weight[start : start + crop, start : start + crop] = 1.0
    return weight


def stitching_record(stitching: str, crop: int) -> dict[str, object]:
    """How the test reconstruction was stitched, for the job's result."""
    if stitching == "ours":
        return {"method": "ours", "weight": "probe_intensity", "align_iterations": ALIGN_ITERATIONS}
    return {"method": "ptychopinn", "weight": "central_crop", "crop": crop, "align_iterations": 0}


def reconstruct_patches(
    patches: np.ndarray, data: PtychoDataModule, stitching: str = "ours", crop: int = 20
) -> Reconstruction:
    """Stitch (S, C, N, N) patches predicted for the test samples; crop to the scanned box."""
    n = patches.shape[-1]
    positions = data.test_samples.positions.reshape(-1, 2)
    weight = stitch_weight(stitching, data.test_split.probe, crop)
    obj = data.test_split.obj
    align = ALIGN_ITERATIONS if stitching == "ours" else 0
    image, total = stitch(
        patches.reshape(-1, n, n), positions, obj.shape, weight, align_iterations=align
    )
    rows, cols = scanned_box(positions, obj.shape)
    mask = total[rows, cols] >= COVERAGE_FRACTION * weight.max()
    return Reconstruction(
        rec=image[rows, cols], gt=obj[rows, cols].astype(np.complex128), mask=mask
    )


def reconstruct(
    model: LitPtychoPINN, data: PtychoDataModule, stitching: str = "ours", crop: int = 20
) -> Reconstruction:
    """Predict every test group and stitch all member patches."""
    patches = predict_patches(model, data.test_samples.diffraction)
    return reconstruct_patches(patches, data, stitching, crop)


def evaluate(
    model: LitPtychoPINN, data: PtychoDataModule, stitching: str = "ours", crop: int = 20
) -> tuple[dict[str, float], Reconstruction]:
    """Our quality metrics of the model's test-split reconstruction, and the reconstruction."""
    result = reconstruct(model, data, stitching, crop)
    if not result.mask.any():
        raise ValueError(f"{data.test_split.path}: the scan illuminates no pixel of the object")
    return compare(result.rec, result.gt, result.mask), result


def save_comparison_png(result: Reconstruction, path: Path, title: str = "") -> None:
    """Ground truth and reconstruction, amplitude and phase, and where they differ.

    Top row: ground truth and reconstruction, each pair on the ground truth's colour range.
    Bottom row: the amplitude error (reconstruction − truth) and the phase error (wrapped,
    after the global phase offset is removed), on symmetric ranges, zero in the middle.
    """
    gt_phase = np.angle(result.gt)
    rec_phase = align_phase(np.angle(result.rec), gt_phase, result.mask)
    amplitude = np.abs(result.gt)
    amp_error = np.where(result.mask, np.abs(result.rec) - amplitude, 0.0)
    phase_error = np.where(result.mask, np.angle(np.exp(1j * (rec_phase - gt_phase))), 0.0)
    amp_span = float(np.abs(amp_error).max()) or 1.0
    phase_span = float(np.abs(phase_error).max()) or np.pi
    panels = [
        ("ground truth amplitude", amplitude, "gray", amplitude.min(), amplitude.max()),
        ("reconstructed amplitude", np.abs(result.rec), "gray", amplitude.min(), amplitude.max()),
        ("ground truth phase", gt_phase, "twilight", gt_phase.min(), gt_phase.max()),
        ("reconstructed phase", rec_phase, "twilight", gt_phase.min(), gt_phase.max()),
        ("amplitude error", amp_error, "RdBu_r", -amp_span, amp_span),
        ("phase error (rad)", phase_error, "RdBu_r", -phase_span, phase_span),
    ]
    figure = Figure(figsize=(12, 6.4), layout="constrained")
    FigureCanvasAgg(figure)
    grid = figure.subplots(2, 4)
    for axes in grid[1, 2:]:
        axes.set_axis_off()  # the error row has two panels
    slots = [*grid[0], grid[1, 0], grid[1, 1]]
    for axes, (name, image, cmap, low, high) in zip(slots, panels, strict=True):
        shown = axes.imshow(image, cmap=cmap, vmin=low, vmax=high)
        axes.set_title(name, fontsize=9)
        axes.set_axis_off()
        figure.colorbar(shown, ax=axes, shrink=0.7)
    if title:
        figure.suptitle(title, fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=80)


FIGURE_METRICS = (
    ("amp MAE", "amplitude_mae"),
    ("phase MAE", "phase_mae"),
    ("phase SSIM", "phase_ssim"),
    ("phase corr", "phase_correlation"),
)


def figure_title(config: TrainConfig, metrics: Mapping[str, Any]) -> str:
    """Which job the figure shows and how well it did, in two lines."""
    who = f"{config.label}: " if config.label else ""
    first = f"{who}gridsize {config.gridsize}, dose {config.nphotons:g}, {config.architecture}"
    scores = [
        f"{name} {value:.3g}"
        for name, key in FIGURE_METRICS
        if isinstance(value := metrics.get(key), int | float) and math.isfinite(value)
    ]
    return f"{first}\n{', '.join(scores)}" if scores else first
