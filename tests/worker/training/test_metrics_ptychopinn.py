"""PtychoPINN-convention metrics against references worked out by hand on constructed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from worker.training.metrics import compare
from worker.training.metrics_ptychopinn import (
    PTYCHOPINN_KEYS,
    compare_ptychopinn,
    fit_and_remove_plane,
    frc50,
    ssim,
)

H, W = 44, 52


@pytest.fixture(scope="module")
def gt() -> np.ndarray:
    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[0:H, 0:W]
    amplitude = 0.6 + 0.3 * np.sin(xx / 3.0) * np.cos(yy / 4.0) + 0.05 * rng.random((H, W))
    phase = 0.7 * np.sin(xx / 5.0 + yy / 7.0) + 0.1 * rng.standard_normal((H, W))
    return amplitude * np.exp(1j * phase)


def windowed_ssim(x: np.ndarray, y: np.ndarray, data_range: float) -> float:
    """SSIM by its definition, one 7×7 window at a time (interior pixels only)."""
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    values = []
    for i in range(3, x.shape[0] - 3):
        for j in range(3, x.shape[1] - 3):
            a, b = x[i - 3 : i + 4, j - 3 : j + 4].ravel(), y[i - 3 : i + 4, j - 3 : j + 4].ravel()
            cov = np.cov(a, b)  # sample (co)variances, ddof = 1
            values.append(
                (2 * a.mean() * b.mean() + c1)
                * (2 * cov[0, 1] + c2)
                / ((a.mean() ** 2 + b.mean() ** 2 + c1) * (cov[0, 0] + cov[1, 1] + c2))
            )
    return float(np.mean(values))


def test_ssim_matches_the_windowed_definition(gt: np.ndarray) -> None:
    x = np.abs(gt)
    y = x + 0.1 * np.random.default_rng(1).standard_normal(x.shape)
    assert ssim(x, y, 0.7) == pytest.approx(windowed_ssim(x, y, 0.7), rel=1e-10)


def test_scaled_amplitude_scores_perfect_amplitude(gt: np.ndarray) -> None:
    scores = compare_ptychopinn(2.5 * gt, gt)
    assert set(scores) == set(PTYCHOPINN_KEYS)
    assert scores["amplitude_mae"] == pytest.approx(0.0, abs=1e-12)
    assert scores["amplitude_ssim"] == pytest.approx(1.0, abs=1e-9)
    assert scores["amplitude_ms_ssim"] == pytest.approx(1.0, abs=1e-9)
    # cv2.PSNR of identical images: 20·log10(255 / DBL_EPSILON)
    assert scores["amplitude_psnr"] == pytest.approx(20 * math.log10(255 / 2.220446049250313e-16))
    # identical images correlate on every ring: FRC50 is the ring count, side//2·√2 + 1
    side = min(H, W) - 4
    assert scores["amplitude_frc50"] == round(math.hypot(side // 2, side // 2)) + 1
    # our convention does not rescale the amplitude
    mask = np.ones(gt.shape, dtype=bool)
    assert compare(2.5 * gt, gt, mask)["amplitude_mae"] == pytest.approx(1.5 * np.abs(gt).mean())


def test_phase_ramp_and_offset_are_removed(gt: np.ndarray) -> None:
    yy, xx = np.mgrid[0:H, 0:W]
    ramped = gt * np.exp(1j * (0.012 * xx - 0.009 * yy + 0.3))
    assert np.abs(np.angle(ramped) - np.angle(gt) - (0.012 * xx - 0.009 * yy + 0.3)).max() < 1e-9
    scores = compare_ptychopinn(ramped, gt)
    assert scores["phase_mae"] == pytest.approx(0.0, abs=1e-12)
    assert scores["phase_ssim"] == pytest.approx(1.0, abs=1e-9)
    assert scores["amplitude_mae"] == pytest.approx(0.0, abs=1e-12)
    # ours removes each image's own ramp (measured on the complex values) and the offset
    mask = np.ones(gt.shape, dtype=bool)
    assert compare(ramped, gt, mask)["phase_mae"] == pytest.approx(0.0, abs=1e-9)
    # even a ramp that wraps the phase many times over the image
    steep = gt * np.exp(1j * (0.4 * xx + 0.25 * yy))
    assert np.ptp(0.4 * xx + 0.25 * yy) > 6 * np.pi
    assert compare(steep, gt, mask)["phase_mae"] == pytest.approx(0.0, abs=1e-9)


def test_flat_object_against_hand_computed_values(gt: np.ndarray) -> None:
    flat = np.full(gt.shape, 0.37 + 0j)
    scores = compare_ptychopinn(flat, gt)
    amplitude = np.abs(gt)[2:-2, 2:-2]
    phase = np.angle(gt)[2:-2, 2:-2]
    # amplitude: mean-scaled to the ground truth's mean, so the error is the deviation
    assert scores["amplitude_mae"] == pytest.approx(np.abs(amplitude - amplitude.mean()).mean())
    assert scores["amplitude_mse"] == pytest.approx(amplitude.var())
    expected_psnr = 20 * math.log10(255 / (math.sqrt(amplitude.var()) + 2.220446049250313e-16))
    assert scores["amplitude_psnr"] == pytest.approx(expected_psnr, rel=1e-6)
    # phase: the target with its least-squares plane removed, against zero
    yy, xx = np.mgrid[0 : phase.shape[0], 0 : phase.shape[1]]
    design = np.column_stack([xx.ravel(), yy.ravel(), np.ones(xx.size)])
    plane = (design @ np.linalg.lstsq(design, phase.ravel(), rcond=None)[0]).reshape(phase.shape)
    target = phase - plane
    assert scores["phase_mae"] == pytest.approx(np.abs(target).mean())
    assert scores["phase_mse"] == pytest.approx(np.mean(target**2))
    # SSIM of (φ + π)/2π against a constant ½, data range 1
    scaled = (target + np.pi) / (2 * np.pi)
    flat_scaled = np.full(scaled.shape, 0.5)
    assert scores["phase_ssim"] == pytest.approx(windowed_ssim(scaled, flat_scaled, 1.0))
    # a flat phase has no power on any ring: 0/0 is never "below 0.5", the maximum ring count
    assert scores["phase_frc50"] == round(math.hypot(*(2 * [min(phase.shape) // 2]))) + 1
    mask = np.ones(gt.shape, dtype=bool)
    assert compare(flat, gt, mask)["phase_correlation"] == pytest.approx(0.0, abs=1e-12)


def test_plane_removal_leaves_nothing_of_a_plane() -> None:
    yy, xx = np.mgrid[0:20, 0:30]
    assert np.abs(fit_and_remove_plane(0.1 * xx + 0.2 * yy + 0.5)).max() < 1e-12


def test_frc50_is_the_ring_where_shared_detail_ends() -> None:
    rng = np.random.default_rng(2)
    side, cutoff = 64, 12
    spectrum = np.fft.fftshift(np.fft.fft2(rng.standard_normal((side, side))))
    yy, xx = np.indices((side, side)) - side // 2
    low = np.rint(np.hypot(yy, xx)) < cutoff
    shared = np.fft.ifft2(np.fft.ifftshift(np.where(low, spectrum, 0))).real
    own = [np.fft.ifft2(np.fft.ifftshift(np.where(low, 0, np.fft.fftshift(
        np.fft.fft2(rng.standard_normal((side, side))))))).real for _ in range(2)]  # fmt: skip
    assert frc50(shared + own[0], shared + own[1]) == cutoff
