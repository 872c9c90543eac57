"""The metric names and the phase conventions the worker scores with (study.md §8).

Each image's own linear phase ramp is removed before phases are compared (`remove_phase_ramp`)
and the global offset aligned (`align_phase`); PSNR and SSIM follow torchmetrics' definitions.
The flat object's baseline is scored by the worker, stitched like the model, and travels in
each job's `result.json` (`baselines.flat`): the API reads no study data file.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.ndimage import gaussian_filter

from app.verdict import FLAT

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
