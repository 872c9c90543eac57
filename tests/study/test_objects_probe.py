"""The procedural object and probe: the properties study.md §4 asks for."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.study.contract import ContractError
from app.study.objects import make_object
from app.study.probe import load_probe, make_probe


def test_object_amplitude_and_phase_ranges() -> None:
    obj = make_object(200, np.random.default_rng(0))
    amplitude, phase = np.abs(obj), np.angle(obj)
    assert amplitude.min() > 0
    assert amplitude.max() <= 1.0
    assert 1.0 <= np.ptp(phase) <= 2.0
    # Correlated, not copies: thicker (darker) regions carry more phase.
    correlation = np.corrcoef(amplitude.ravel(), phase.ravel())[0, 1]
    assert -0.99 < correlation < -0.3


def test_object_has_sharp_edges_and_texture_at_several_scales() -> None:
    amplitude = np.abs(make_object(200, np.random.default_rng(1)))
    steps = np.abs(np.diff(amplitude, axis=1))
    assert np.quantile(steps, 0.999) > 0.1  # sharp walls survive the light blur
    coarse = amplitude.reshape(20, 10, 20, 10).mean(axis=(1, 3))
    assert coarse.std() > 0.02
    assert amplitude.std() > coarse.std()


def test_object_is_deterministic_under_its_generator() -> None:
    first = make_object(64, np.random.default_rng(5))
    np.testing.assert_array_equal(first, make_object(64, np.random.default_rng(5)))
    assert not np.array_equal(first, make_object(64, np.random.default_rng(6)))


@pytest.mark.parametrize("size", [64, 128])
def test_probe_energy_sits_in_a_disc_of_diameter_0_6_n(size: int) -> None:
    intensity = np.abs(make_probe(size)) ** 2
    rows, cols = np.mgrid[0:size, 0:size]
    inside = np.hypot(rows - size / 2, cols - size / 2) <= 0.3 * size
    assert intensity[inside].sum() / intensity.sum() > 0.85
    assert np.abs(make_probe(size)).max() == pytest.approx(1.0)


@pytest.mark.parametrize("size", [64, 128])
def test_probe_is_not_centrosymmetric_nor_its_own_twin(size: int) -> None:
    probe = make_probe(size)
    # Point reflection about the centre pixel (size/2, size/2).
    mirrored = np.roll(probe[::-1, ::-1], (1, 1), axis=(0, 1))
    energy = np.vdot(probe, probe).real
    assert np.linalg.norm(probe - mirrored) / np.sqrt(energy) > 0.3
    assert abs(np.vdot(np.conj(mirrored), probe)) / energy < 0.5


def test_probe_file_of_the_wrong_shape_is_refused(tmp_path: Path) -> None:
    np.savez(tmp_path / "p.npz", probeGuess=np.ones((32, 32), dtype=np.complex64))
    with pytest.raises(ContractError) as info:
        load_probe(tmp_path / "p.npz", 64)
    assert info.value.key == "probeGuess"
    assert "N = 64" in str(info.value)
    np.savez(tmp_path / "q.npz", other=np.ones(3))
    with pytest.raises(ContractError, match="probeGuess"):
        load_probe(tmp_path / "q.npz", 64)
    with pytest.raises(FileNotFoundError, match=r"missing\.npz"):
        load_probe(tmp_path / "missing.npz", 64)
