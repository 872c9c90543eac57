"""The forward model: geometry convention, sub-pixel sampling and energy conservation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from app.study.forward import bilinear_patches, centring_probe, intensity_into
from app.study.objects import make_object
from app.study.probe import make_probe
from app.study.simulate import extract_patches, forward_intensity

N = 32


@pytest.fixture
def obj() -> np.ndarray:
    return make_object(96, np.random.default_rng(3))


def test_integer_position_is_the_plain_slice_around_the_centre(obj: np.ndarray) -> None:
    patches = extract_patches(obj, np.array([40.0]), np.array([50.0]), N)
    # Centre (x=40, y=50): pixel (i, j) is object (50 - 16 + i, 40 - 16 + j).
    np.testing.assert_array_equal(patches[0], obj[34:66, 24:56])
    assert patches.dtype == np.complex128


def test_sub_pixel_positions_match_map_coordinates(obj: np.ndarray) -> None:
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.uniform(N / 2, 96 - N / 2, 20), [N / 2, 96 - N / 2]])
    y = np.concatenate([rng.uniform(N / 2, 96 - N / 2, 20), [96 - N / 2, N / 2]])
    patches = extract_patches(obj, x, y, N)
    rows, cols = np.mgrid[0:N, 0:N]
    for k in range(len(x)):
        coords = [y[k] - N / 2 + rows, x[k] - N / 2 + cols]
        expected = ndimage.map_coordinates(obj, coords, order=1)
        np.testing.assert_allclose(patches[k], expected, rtol=0, atol=1e-12)


def test_position_outside_the_object_is_refused(obj: np.ndarray) -> None:
    with pytest.raises(ValueError, match="outside"):
        extract_patches(obj, np.array([10.0]), np.array([50.0]), N)


def test_noiseless_forward_model_conserves_energy(obj: np.ndarray) -> None:
    rng = np.random.default_rng(1)
    x, y = rng.uniform(16, 80, 12), rng.uniform(16, 80, 12)
    probe = make_probe(N)
    patches = extract_patches(obj, x, y, N)
    intensity = forward_intensity(patches, probe)
    exit_energy = np.sum(np.abs(patches * probe) ** 2, axis=(1, 2))
    np.testing.assert_allclose(intensity.sum(axis=(1, 2)), exit_energy, rtol=1e-12)
    assert intensity.dtype == np.float64


def test_zero_frequency_is_at_the_centre() -> None:
    flat = np.ones((1, N, N), dtype=np.complex128)
    intensity = forward_intensity(flat, np.ones((N, N)))
    assert intensity[0, N // 2, N // 2] == pytest.approx(N * N)
    assert intensity[0].sum() == pytest.approx(N * N)


def test_fast_path_matches_the_reference_forward_model(obj: np.ndarray) -> None:
    rng = np.random.default_rng(2)
    x, y = rng.uniform(16, 80, 10), rng.uniform(16, 80, 10)
    probe = make_probe(N)
    obj64 = obj.astype(np.complex64)
    reference = forward_intensity(extract_patches(obj64, x, y, N), probe)
    out = np.empty((10, N, N), dtype=np.float32)
    energies = intensity_into(out, obj64, centring_probe(probe), x, y)
    np.testing.assert_allclose(out, reference, rtol=0, atol=1e-5 * reference.max())
    np.testing.assert_allclose(energies, reference.sum(axis=(1, 2)), rtol=1e-5)
    np.testing.assert_allclose(
        bilinear_patches(obj64, x, y, N), extract_patches(obj64, x, y, N), atol=1e-6
    )
