"""Reconstruction quality against the ground-truth object (study.md §8, Evaluation).

The global phase offset is not determined by diffraction data, and a linear phase ramp is
barely determined by it (a ramp of k rad/pixel only moves each diffraction pattern by
k·N/2π pixels), so before any phase metric each image, reconstruction and ground truth
alike, loses its own linear phase ramp: its mean phase step between neighbouring pixels
over the scanned region (`phase_ramp`, the angle of Σ z(r + 1)·conj(z(r)): PtychoPINN's
per-image plane removal, measured on the complex values so that no phase wrap spoils it; a
flat image has none). Then the reconstruction's phase is shifted by the circular mean of
(ground truth − reconstruction) over the scanned region and wrapped into the window of
width 2π centred on the ground truth's circular mean. Amplitude needs no alignment: the
known probe and intensity scale fix it.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.ndimage import gaussian_filter1d
from torchmetrics.functional.image import (
    peak_signal_noise_ratio,
    structural_similarity_index_measure,
)

from app.baselines import METRIC_KEYS, align_phase, phase_ramp, remove_phase_ramp

__all__ = [
    "METRIC_KEYS", "align_phase", "compare", "frc50", "frc_curve", "phase_ramp",
    "remove_phase_ramp", "remove_plane", "wrap",
]  # fmt: skip

FRC_SMOOTHING_RINGS = 1.0


def wrap(phase: np.ndarray) -> np.ndarray:
    """Wrap angles into (-π, π]."""
    return np.angle(np.exp(1j * phase))


def compare(rec: np.ndarray, gt: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """All quality metrics of a complex reconstruction against ground truth on one crop.

    rec, gt: complex (h, w) crops of the scanned region; mask: pixels the scan reached.
    Unreached pixels of the reconstruction take its mean so rectangle metrics stay defined.
    """
    rec, gt = remove_phase_ramp(rec, mask), remove_phase_ramp(gt, mask)
    gt_amp, gt_phase = np.abs(gt), np.angle(gt)
    rec_amp = _fill(np.abs(rec), mask)
    rec_phase = _fill(align_phase(np.angle(rec), gt_phase, mask), mask)
    gt_phase = np.where(mask, gt_phase, gt_phase[mask].mean())
    gt_phase = align_phase(gt_phase, gt_phase, mask)
    amp_scaled = rec_amp * (gt_amp[mask].mean() / max(rec_amp[mask].mean(), 1e-12))
    return {
        "amplitude_mae": float(np.abs(rec_amp - gt_amp)[mask].mean()),
        "phase_mae": float(np.abs(rec_phase - gt_phase)[mask].mean()),
        "amplitude_psnr": _psnr(rec_amp, gt_amp),
        "phase_psnr": _psnr(rec_phase, gt_phase),
        "amplitude_ssim": _ssim(rec_amp, gt_amp),
        "phase_ssim": _ssim(rec_phase, gt_phase),
        "amplitude_frc50": frc50(amp_scaled, gt_amp),
        "phase_frc50": frc50(remove_plane(rec_phase), remove_plane(gt_phase)),
        "phase_correlation": _correlation(rec_phase[mask], gt_phase[mask]),
    }


def _fill(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return np.where(mask, values, values[mask].mean())


def _tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image, dtype=np.float64))[None, None]


def _data_range(target: np.ndarray) -> float:
    return max(float(target.max() - target.min()), 1e-12)


def _psnr(pred: np.ndarray, target: np.ndarray) -> float:
    """PSNR with the ground truth's peak-to-peak range as the data range."""
    value = peak_signal_noise_ratio(_tensor(pred), _tensor(target), data_range=_data_range(target))
    return float(value)


def _ssim(pred: np.ndarray, target: np.ndarray) -> float:
    value = structural_similarity_index_measure(
        _tensor(pred), _tensor(target), data_range=_data_range(target)
    )
    return float(value)  # type: ignore[arg-type]


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    denominator = math.sqrt(float(np.sum(a * a)) * float(np.sum(b * b)))
    return float(np.sum(a * b)) / denominator if denominator > 0 else 0.0


def remove_plane(image: np.ndarray) -> np.ndarray:
    """Subtract the least-squares plane a + b·x + c·y."""
    h, w = image.shape
    yy, xx = np.mgrid[0:h, 0:w]
    design = np.stack([np.ones(h * w), xx.ravel(), yy.ravel()], axis=1)
    coeffs, *_ = np.linalg.lstsq(design, image.ravel(), rcond=None)
    plane: np.ndarray = (design @ coeffs).reshape(h, w)
    flattened: np.ndarray = image - plane
    return flattened


def frc_curve(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fourier ring correlation of two images on their centred square crop.

    Returns (frequency in cycles per pixel, FRC) for rings 1 … side/2. Means are removed and a
    Hann window applied so the crop's edges do not correlate the images by themselves.
    """
    side = min(a.shape)
    top, left = (a.shape[0] - side) // 2, (a.shape[1] - side) // 2
    window = np.outer(np.hanning(side), np.hanning(side))
    spectra = []
    for image in (a, b):
        crop = image[top : top + side, left : left + side]
        spectra.append(np.fft.fftshift(np.fft.fft2((crop - crop.mean()) * window)))
    yy, xx = np.indices((side, side)) - side // 2
    rings = np.rint(np.hypot(yy, xx)).astype(int).ravel()
    cross = np.bincount(rings, (spectra[0] * np.conj(spectra[1])).ravel().real)
    power_a = np.bincount(rings, (np.abs(spectra[0]) ** 2).ravel())
    power_b = np.bincount(rings, (np.abs(spectra[1]) ** 2).ravel())
    radii = np.arange(1, side // 2 + 1)
    denominator = np.sqrt(power_a[radii] * power_b[radii])
    curve = np.divide(cross[radii], denominator, out=np.zeros(len(radii)), where=denominator > 0)
    return radii / side, curve


def frc50(a: np.ndarray, b: np.ndarray) -> float:
    """Spatial frequency (cycles/pixel, up to 0.5) where the FRC first falls below 0.5.

    The curve is smoothed over about one ring first, so a single noisy ring (the innermost
    rings hold only a few Fourier coefficients) does not decide the answer.
    """
    frequency, curve = frc_curve(a, b)
    curve = gaussian_filter1d(curve, FRC_SMOOTHING_RINGS, mode="nearest")
    below = np.flatnonzero(curve < 0.5)
    if below.size == 0:
        return float(frequency[-1])
    return float(frequency[below[0] - 1]) if below[0] > 0 else 0.0
