"""Trivial baselines for the study report: what a reconstruction that learned nothing scores.

The flat baseline is a constant object: the ground truth's mean amplitude over the scanned
region, and a constant phase. It is scored like the worker scores a model (same alignment,
each image's own linear phase ramp removed first,
PSNR and SSIM definitions) on the test split's scanned region: the bounding box of the scan
positions, keeping pixels whose |probe|² coverage reaches a tenth of the probe's peak. The
worker places patches with sub-pixel shifts and, for gridsize 2, only the test groups it
sampled; here every test position is placed at its nearest pixel, so the region matches the
model's to within a pixel at its edge. A flat image has no Fourier ring correlation and no
correlation with anything: its FRC50 and phase correlation are 0 by those metrics'
definitions.
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter

from app.verdict import FLAT

COVERAGE_FRACTION = 0.1
SSIM_SIGMA = 1.5
SSIM_RADIUS = 5  # an 11-pixel Gaussian window, as torchmetrics uses
BASELINE_NAME = FLAT
# The quality metrics of a reconstruction (study.md §8), as the worker and the report name them.
METRIC_KEYS = (
    "amplitude_mae",
    "phase_mae",
    "amplitude_psnr",
    "phase_psnr",
    "amplitude_ssim",
    "phase_ssim",
    "amplitude_frc50",
    "phase_frc50",
    "phase_correlation",
)


def flat_baseline(test_path: str | Path) -> dict[str, float] | None:
    """Metrics of the flat object on the test split; None when the split cannot be read."""
    path = Path(test_path)
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        return None
    return _flat_baseline(str(path), stamp)


@lru_cache(maxsize=256)
def _flat_baseline(path: str, _stamp: int) -> dict[str, float] | None:
    try:
        with np.load(path, allow_pickle=False) as npz:
            obj = np.asarray(npz["objectGuess"]).astype(np.complex128)
            probe = np.asarray(npz["probeGuess"]).astype(np.complex128)
            positions = np.stack([npz["xcoords"], npz["ycoords"]], axis=1).astype(np.float64)
    except (OSError, KeyError, ValueError):
        return None
    gt, mask = scanned_region(obj, probe, positions)
    if not mask.any():
        return None
    return score_flat(gt, mask)


def scanned_region(
    obj: np.ndarray, probe: np.ndarray, positions: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The ground truth cropped to the scan's bounding box, and the pixels the probe covered."""
    weight = np.abs(probe) ** 2
    n = weight.shape[0]
    total = np.zeros(obj.shape, dtype=np.float64)
    for row, col in np.rint(positions[:, ::-1] - n / 2).astype(int):
        r0, c0 = max(row, 0), max(col, 0)
        r1, c1 = min(row + n, obj.shape[0]), min(col + n, obj.shape[1])
        if r0 < r1 and c0 < c1:
            total[r0:r1, c0:c1] += weight[r0 - row : r1 - row, c0 - col : c1 - col]
    x, y = positions[:, 0], positions[:, 1]
    rows = slice(max(math.floor(y.min()), 0), min(math.ceil(y.max()) + 1, obj.shape[0]))
    cols = slice(max(math.floor(x.min()), 0), min(math.ceil(x.max()) + 1, obj.shape[1]))
    return obj[rows, cols], total[rows, cols] >= COVERAGE_FRACTION * weight.max()


def score_flat(gt: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """The worker's metrics for a constant reconstruction of `gt` on `mask`."""
    gt = remove_phase_ramp(gt, mask)  # a flat image has no ramp of its own to remove
    gt_amp = np.abs(gt)
    gt_phase = np.where(mask, np.angle(gt), np.angle(gt)[mask].mean())
    gt_phase = align_phase(gt_phase, gt_phase, mask)
    rec_amp = np.full(gt.shape, gt_amp[mask].mean())
    rec_phase = np.full(gt.shape, align_phase(np.zeros(gt.shape), gt_phase, mask)[mask].mean())
    return {
        "amplitude_mae": float(np.abs(rec_amp - gt_amp)[mask].mean()),
        "phase_mae": float(np.abs(rec_phase - gt_phase)[mask].mean()),
        "amplitude_psnr": psnr(rec_amp, gt_amp),
        "phase_psnr": psnr(rec_phase, gt_phase),
        "amplitude_ssim": ssim(rec_amp, gt_amp),
        "phase_ssim": ssim(rec_phase, gt_phase),
        "amplitude_frc50": 0.0,
        "phase_frc50": 0.0,
        "phase_correlation": 0.0,
    }


def phase_ramp(image: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """(kx, ky) in rad/pixel: the image's own mean phase step between neighbouring pixels,
    the angle of Σ z(r + 1) · conj(z(r)) over pairs inside the mask along each axis."""
    z = np.where(mask, image, 0.0).astype(np.complex128)
    steps = []
    for axis in (1, 0):
        ahead = np.take(z, np.arange(1, z.shape[axis]), axis=axis)
        behind = np.take(z, np.arange(z.shape[axis] - 1), axis=axis)
        total = np.sum(ahead * np.conj(behind))
        steps.append(float(np.angle(total)) if abs(total) > 0 else 0.0)
    return steps[0], steps[1]


def remove_phase_ramp(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The image with its own linear phase ramp (`phase_ramp`) taken out."""
    kx, ky = phase_ramp(image, mask)
    rows, cols = np.indices(image.shape)
    flattened: np.ndarray = image * np.exp(-1j * (kx * cols + ky * rows))
    return flattened


def align_phase(rec_phase: np.ndarray, gt_phase: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The worker's phase alignment: remove the global offset, wrap around gt's mean."""
    offset = np.angle(np.sum(np.exp(1j * (gt_phase - rec_phase))[mask]))
    centre = np.angle(np.sum(np.exp(1j * gt_phase[mask])))
    wrapped: np.ndarray = np.angle(np.exp(1j * (rec_phase + offset - centre)))
    aligned: np.ndarray = wrapped + centre
    return aligned


def _data_range(target: np.ndarray) -> float:
    return max(float(target.max() - target.min()), 1e-12)


def psnr(pred: np.ndarray, target: np.ndarray) -> float:
    """PSNR with the target's peak-to-peak range as the data range."""
    mse = float(np.mean((pred - target) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(_data_range(target) ** 2 / mse)


def ssim(pred: np.ndarray, target: np.ndarray) -> float:
    """SSIM with an 11-pixel Gaussian window (σ 1.5) over mirrored borders, as torchmetrics."""
    c1, c2 = (0.01 * _data_range(target)) ** 2, (0.03 * _data_range(target)) ** 2

    def blur(image: np.ndarray) -> np.ndarray:
        smoothed: np.ndarray = gaussian_filter(
            image, SSIM_SIGMA, mode="mirror", truncate=SSIM_RADIUS / SSIM_SIGMA
        )
        return smoothed

    mu_p, mu_t = blur(pred), blur(target)
    var_p = np.maximum(blur(pred * pred) - mu_p**2, 0.0)
    var_t = np.maximum(blur(target * target) - mu_t**2, 0.0)
    cov = blur(pred * target) - mu_p * mu_t
    index = ((2 * mu_p * mu_t + c1) * (2 * cov + c2)) / (
        (mu_p**2 + mu_t**2 + c1) * (var_p + var_t + c2)
    )
    return float(index.mean())
