"""Parity of the torch physics with the simulator's forward model (app.study.forward)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from app.study.objects import make_object
from app.study.probe import make_probe
from app.study.simulate import extract_patches, forward_intensity
from worker.training.physics import (
    backprojection,
    diffraction_amplitude,
    forward_amplitude,
    overlap_constraint,
    poisson_nll,
    shift_patches,
)

N = 64


@pytest.fixture(scope="module")
def scene() -> tuple[np.ndarray, np.ndarray]:
    obj = make_object(200, np.random.default_rng(7)).astype(np.complex128)
    return obj, make_probe(N).astype(np.complex128)


def _intensity(patches: np.ndarray, probe: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    amplitude = forward_amplitude(
        torch.from_numpy(patches)[None],
        torch.from_numpy(probe),
        torch.from_numpy(offsets)[None],
        1.0,
    )
    return amplitude[0].numpy() ** 2


def test_gridsize1_matches_simulator_at_subpixel_positions(scene: tuple[np.ndarray, ...]) -> None:
    obj, probe = scene
    rng = np.random.default_rng(1)
    x, y = rng.uniform(N / 2, 200 - N / 2, (2, 16))
    patches = extract_patches(obj, x, y, N)
    ours = diffraction_amplitude(torch.from_numpy(patches), torch.from_numpy(probe)).numpy() ** 2
    expected = forward_intensity(patches, probe)
    np.testing.assert_allclose(ours, expected, rtol=1e-9, atol=1e-12 * expected.max())
    ours32 = (
        diffraction_amplitude(
            torch.from_numpy(patches.astype(np.complex64)),
            torch.from_numpy(probe.astype(np.complex64)),
        ).numpy()
        ** 2
    )
    np.testing.assert_allclose(ours32, expected, rtol=1e-4, atol=1e-6 * expected.max())


def test_gridsize2_whole_pixel_offsets_reassemble_exactly(scene: tuple[np.ndarray, ...]) -> None:
    obj, probe = scene
    # Sub-pixel positions whose pairwise differences are whole pixels: the patches are samples
    # of one object on one grid, so averaging their overlaps changes nothing.
    x = np.array([80.25, 95.25, 83.25, 99.25])
    y = np.array([90.5, 88.5, 104.5, 101.5])
    patches = extract_patches(obj, x, y, N)
    offsets = np.stack([x - x.mean(), y - y.mean()], axis=1)
    ours = _intensity(patches, probe, offsets)
    np.testing.assert_allclose(ours, forward_intensity(patches, probe), rtol=1e-9, atol=1e-9)


def test_gridsize2_subpixel_offsets_reassemble_within_interpolation_error(
    scene: tuple[np.ndarray, ...],
) -> None:
    obj, probe = scene
    rng = np.random.default_rng(3)
    x, y = 100 + rng.uniform(-12, 12, (2, 4))
    patches = extract_patches(obj, x, y, N)
    offsets = np.stack([x - x.mean(), y - y.mean()], axis=1)
    rebuilt = overlap_constraint(torch.from_numpy(patches)[None], torch.from_numpy(offsets)[None])
    relative = np.linalg.norm(rebuilt[0].numpy() - patches) / np.linalg.norm(patches)
    assert 0 < relative < 0.03
    ours, expected = _intensity(patches, probe, offsets), forward_intensity(patches, probe)
    assert np.linalg.norm(ours - expected) / np.linalg.norm(expected) < 0.03


def test_isolated_member_comes_back_unchanged_at_subpixel_offset() -> None:
    rng = np.random.default_rng(4)
    patches = torch.from_numpy(
        rng.normal(size=(1, 4, 16, 16)) + 1j * rng.normal(size=(1, 4, 16, 16))
    )
    offsets = torch.tensor([[[-40.3, -40.7], [40.6, -40.2], [-40.1, 40.9], [40.4, 40.5]]])
    assert torch.equal(overlap_constraint(patches, offsets.double()), patches)


def test_subpixel_shift_matches_bilinear_extraction(scene: tuple[np.ndarray, ...]) -> None:
    obj, _ = scene
    base = extract_patches(obj, np.array([100.0]), np.array([90.0]), N)
    shifted = extract_patches(obj, np.array([100.3]), np.array([90.8]), N)
    # Sampling 0.3 px right and 0.8 px down = moving the content by (-0.3, -0.8).
    moved = shift_patches(torch.from_numpy(base), torch.tensor([[-0.3, -0.8]], dtype=torch.float64))
    np.testing.assert_allclose(moved.numpy()[0, :-1, :-1], shifted[0, :-1, :-1], atol=1e-12)


def test_whole_pixel_shift_is_exact() -> None:
    values = torch.randn(2, 8, 8, dtype=torch.complex64)
    moved = shift_patches(values, torch.tensor([[2.0, -1.0], [-3.0, 0.0]]))
    assert torch.equal(moved[0, :-1, 2:], values[0, 1:, :-2])
    assert torch.equal(moved[1, :, :-3], values[1, :, 3:])
    assert torch.count_nonzero(moved[0, -1]) == 0
    assert torch.count_nonzero(moved[1, :, -3:]) == 0


def test_poisson_nll_is_lowest_at_the_true_intensity() -> None:
    rate = torch.rand(1, 1, 16, 16) * 50 + 1
    torch.manual_seed(0)
    counts = torch.poisson(rate.expand(256, -1, -1, -1))
    measured = counts.sqrt()
    losses = [
        float(poisson_nll((rate * f).sqrt().expand_as(measured), measured))
        for f in (0.8, 1.0, 1.25)
    ]
    assert losses[1] < losses[0]
    assert losses[1] < losses[2]


def test_backprojection_of_a_weak_object_points_at_its_phase() -> None:
    obj = make_object(200, np.random.default_rng(11)).astype(np.complex128)
    probe = make_probe(N)
    rng = np.random.default_rng(12)
    x, y = rng.uniform(N / 2, 200 - N / 2, (2, 32))
    patches = extract_patches(obj, x, y, N)
    amplitudes = np.sqrt(forward_intensity(patches, probe))
    estimate = backprojection(torch.from_numpy(amplitudes), torch.from_numpy(probe)).numpy()
    bright = np.abs(probe) ** 2 > 0.5 * (np.abs(probe) ** 2).max()
    truth = np.angle(patches)[:, bright]
    guess = np.angle(estimate)[:, bright]
    assert np.corrcoef(truth.ravel(), guess.ravel())[0, 1] > 0.3
