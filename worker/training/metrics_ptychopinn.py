"""Quality metrics under PtychoPINN's conventions (hoidn/PtychoPINN `ptycho/evaluation.py`,
`eval_reconstruction` with its defaults: phase_align_method="plane", frc_sigma=0,
ms_ssim_sigma=1), reimplemented with numpy and scipy:

- both images trimmed by offset/2 = 2 pixels on every side (`trim`, offset 4);
- amplitude: the reconstruction scaled so its mean equals the ground truth's;
- phase: np.angle of each image, a least-squares plane removed from each, no wrapping;
- MAE, MSE; PSNR as OpenCV's cv2.PSNR with its default peak R = 255, on float32 copies;
- SSIM as scikit-image's structural_similarity defaults (7×7 uniform window, K1 0.01,
  K2 0.03, sample covariance), amplitude with the ground truth's range as data range,
  phase on (φ + π) / 2π with data range 1;
- MS-SSIM as PtychoPINN's own `ms_ssim`: five levels with weights (0.0448, 0.2856,
  0.3001, 0.2363, 0.1333), full SSIM at every level, ×½ subsampling, stopping below 7
  pixels; amplitude smoothed first (Gaussian σ = 1), phase on the (φ + π) / 2π images;
- FRC50 as a ring index: the Fourier ring correlation of PtychoPINN's FRC module
  (rings by rounded radius about the fftshifted centre, ring 0 is the zero frequency,
  Re⟨F1·F2*⟩ / sqrt(⟨|F1|²⟩⟨|F2|²⟩)) on the centred square crop; FRC50 is the index of the
  first ring below 0.5, or the number of rings when none is. Rings where an image has no
  power give 0/0 = NaN, which is never "below 0.5": a flat image scores the maximum, as
  it does there.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.ndimage import gaussian_filter, uniform_filter

TRIM = 2
PSNR_PEAK = 255.0
SSIM_WINDOW = 7
SSIM_K1, SSIM_K2 = 0.01, 0.03
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
MS_SSIM_AMPLITUDE_SIGMA = 1.0
MS_SSIM_MIN_SIZE = 7
MS_SSIM_NEGATIVE_FLOOR = 0.0001

PTYCHOPINN_KEYS = (
    "amplitude_mae", "phase_mae", "amplitude_mse", "phase_mse",
    "amplitude_psnr", "phase_psnr", "amplitude_ssim", "phase_ssim",
    "amplitude_ms_ssim", "phase_ms_ssim", "amplitude_frc50", "phase_frc50",
)  # fmt: skip


def trim(image: np.ndarray, pixels: int = TRIM) -> np.ndarray:
    return image[pixels:-pixels, pixels:-pixels] if pixels else image


def fit_and_remove_plane(phase: np.ndarray) -> np.ndarray:
    """phase − (a·x + b·y + c), least squares over every pixel."""
    h, w = phase.shape
    yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    design = np.column_stack([xx.ravel(), yy.ravel(), np.ones(h * w)])
    coeffs, *_ = np.linalg.lstsq(design, phase.ravel(), rcond=None)
    plane: np.ndarray = coeffs[0] * xx + coeffs[1] * yy + coeffs[2]
    flattened: np.ndarray = phase - plane
    return flattened


def ssim(a: np.ndarray, b: np.ndarray, data_range: float) -> float:
    """Mean SSIM with scikit-image's defaults (uniform 7×7 window, sample covariance)."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if min(x.shape) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs images of at least {SSIM_WINDOW} pixels, got {x.shape}")
    area = SSIM_WINDOW**2
    cov_norm = area / (area - 1)

    def mean(values: np.ndarray) -> np.ndarray:
        return uniform_filter(values, size=SSIM_WINDOW)  # type: ignore[no-any-return]

    ux, uy = mean(x), mean(y)
    vx = cov_norm * (mean(x * x) - ux * ux)
    vy = cov_norm * (mean(y * y) - uy * uy)
    vxy = cov_norm * (mean(x * y) - ux * uy)
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))
    pad = (SSIM_WINDOW - 1) // 2
    return float(s[pad:-pad, pad:-pad].mean(dtype=np.float64))


def ms_ssim(a: np.ndarray, b: np.ndarray, sigma: float = 0.0) -> float:
    """PtychoPINN's MS-SSIM: ∏ SSIM_level ^ weight over ×½ subsampled levels."""
    if sigma > 0:
        a, b = gaussian_filter(a, sigma), gaussian_filter(b, sigma)
    data_range = float(max(a.max() - a.min(), b.max() - b.min()))
    value = 1.0
    for level, weight in enumerate(MS_SSIM_WEIGHTS):
        score = ssim(a, b, data_range)
        if math.isnan(score):
            return 0.0
        value *= (MS_SSIM_NEGATIVE_FLOOR if score < 0 else score) ** weight
        if level < len(MS_SSIM_WEIGHTS) - 1:
            a, b = a[::2, ::2], b[::2, ::2]
            if min(a.shape) < MS_SSIM_MIN_SIZE:
                break
    return float(value)


def psnr(target: np.ndarray, pred: np.ndarray) -> float:
    """cv2.PSNR(float32, float32) with R = 255: 20·log10(R / (RMS error + DBL_EPSILON))."""
    t, p = target.astype(np.float32), pred.astype(np.float32)
    rms = math.sqrt(float(np.sum((t.astype(np.float64) - p.astype(np.float64)) ** 2)) / t.size)
    return 20 * math.log10(PSNR_PEAK / (rms + np.finfo(np.float64).eps))


def _ring_sums(values: np.ndarray, rings: np.ndarray, count: int) -> np.ndarray:
    real = np.bincount(rings, values.real.ravel(), minlength=count)
    imag = np.bincount(rings, values.imag.ravel(), minlength=count)
    return real + 1j * imag


def frc_curve(target: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """PtychoPINN's FSC curve (real part) on the centred square crop; ring 0 first."""
    side = min(target.shape)
    top, left = (target.shape[0] - side) // 2, (target.shape[1] - side) // 2
    a = target[top : top + side, left : left + side].astype(np.float64)
    b = pred[top : top + side, left : left + side].astype(np.float64)
    spectrum_a = np.fft.fftshift(np.fft.fft2(a))
    spectrum_b = np.fft.fftshift(np.fft.fft2(b))
    offsets = np.arange(side) - side // 2
    rr, cc = np.meshgrid(offsets, offsets)
    rings = np.rint(np.hypot(rr, cc)).astype(np.int64).ravel()
    count = int(rings.max()) + 1
    cross = _ring_sums(spectrum_a * np.conj(spectrum_b), rings, count)
    power_a = _ring_sums(spectrum_a * np.conj(spectrum_a), rings, count)
    power_b = _ring_sums(spectrum_b * np.conj(spectrum_b), rings, count)
    with np.errstate(invalid="ignore", divide="ignore"):
        return cross.real / np.sqrt(np.abs(power_a * power_b))  # type: ignore[no-any-return]


def frc50(target: np.ndarray, pred: np.ndarray) -> float:
    """Index of the first ring whose FRC is below 0.5; the ring count when none is."""
    if np.max(target) == np.min(target) == 0:
        return math.nan
    curve = frc_curve(target, pred)
    below = np.flatnonzero(curve < 0.5)
    return float(below[0]) if below.size else float(len(curve))


def compare_ptychopinn(rec: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """Every metric of `eval_reconstruction` for complex (h, w) images on the same grid."""
    amp_target = trim(np.abs(gt)).astype(np.float64)
    amp_pred = trim(np.abs(rec)).astype(np.float64)
    amp_pred = amp_pred * (np.mean(amp_target) / max(float(np.mean(amp_pred)), 1e-30))
    phi_target = fit_and_remove_plane(trim(np.angle(gt)))
    phi_pred = fit_and_remove_plane(trim(np.angle(rec)))
    scaled_target = (phi_target + np.pi) / (2 * np.pi)
    scaled_pred = (phi_pred + np.pi) / (2 * np.pi)
    amp_range = float(amp_target.max() - amp_target.min())
    return {
        "amplitude_mae": float(np.mean(np.abs(amp_target - amp_pred))),
        "phase_mae": float(np.mean(np.abs(phi_target - phi_pred))),
        "amplitude_mse": float(np.mean((amp_target - amp_pred) ** 2)),
        "phase_mse": float(np.mean((phi_target - phi_pred) ** 2)),
        "amplitude_psnr": psnr(amp_target, amp_pred),
        "phase_psnr": psnr(phi_target, phi_pred),
        "amplitude_ssim": ssim(amp_target, amp_pred, amp_range),
        "phase_ssim": ssim(scaled_target, scaled_pred, 1.0),
        "amplitude_ms_ssim": ms_ssim(amp_target, amp_pred, sigma=MS_SSIM_AMPLITUDE_SIGMA),
        "phase_ms_ssim": ms_ssim(scaled_target, scaled_pred),
        "amplitude_frc50": frc50(amp_target, amp_pred),
        "phase_frc50": frc50(phi_target, phi_pred),
    }
