"""Diffraction arrays not written by us: layout, amplitude or intensity, and the scale."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.study.contract import ContractError, load_split
from app.study.diffraction import metadata_nphotons, photon_quantum, read_diffraction

n, N = 40, 16
SCALE = 3.7


@pytest.fixture(scope="module")
def counts() -> np.ndarray:
    """Poisson counts with a bright centre, like a diffraction pattern."""
    yy, xx = np.indices((N, N)) - N // 2
    rate = 60 * np.exp(-(xx**2 + yy**2) / 8.0) + 0.3
    return np.random.default_rng(0).poisson(rate, (n, N, N)).astype(np.float64)


def test_amplitudes_are_recognised_and_give_the_scale(counts: np.ndarray) -> None:
    stored = (np.sqrt(counts) / SCALE).astype(np.float32)
    reading = read_diffraction(stored, n, {})
    assert reading.kind == "amplitude"
    assert reading.notes == ()
    assert reading.intensity_scale == pytest.approx(SCALE, rel=1e-6)
    np.testing.assert_array_equal(reading.amplitudes, stored)


@pytest.mark.parametrize("scale", [1.0, SCALE])
def test_intensities_are_converted_and_noted(counts: np.ndarray, scale: float) -> None:
    stored = (counts / scale**2).astype(np.float32)
    reading = read_diffraction(stored, n, {})
    assert reading.kind == "intensity"
    assert any("intensities" in note and "sqrt" in note for note in reading.notes)
    assert reading.intensity_scale == pytest.approx(scale, rel=1e-6)
    np.testing.assert_allclose(reading.amplitudes, np.sqrt(counts) / scale, rtol=1e-6)


def test_patterns_last_layout_is_transposed(counts: np.ndarray) -> None:
    stored = (np.sqrt(counts) / SCALE).astype(np.float32)
    reading = read_diffraction(np.moveaxis(stored, 0, -1), n, {})
    assert any("patterns-last" in note for note in reading.notes)
    np.testing.assert_array_equal(reading.amplitudes, stored)


def test_noiseless_values_follow_metadata_then_the_contract(counts: np.ndarray) -> None:
    smooth = (counts + np.random.default_rng(1).random(counts.shape)).astype(np.float32)
    assert photon_quantum(smooth) == (None, None)
    assert read_diffraction(smooth, n, {}).kind == "amplitude"
    told = read_diffraction(smooth, n, {"diffraction_kind": "intensity"})
    assert told.kind == "intensity"
    assert "_metadata" in told.notes[-1]
    # a recorded scale and dose decide by Parseval: Σ intensity·s² ≈ dose
    dose = float(np.mean(np.sum(smooth, axis=(1, 2))))
    by_counts = read_diffraction(smooth, n, {"intensity_scale": 1.0, "dose": dose})
    assert by_counts.kind == "intensity"


def test_ptychopinn_metadata_nphotons_is_read() -> None:
    assert metadata_nphotons({"physics_parameters": {"nphotons": 1e9}}) == 1e9
    assert metadata_nphotons({"dose": 1000.0}) == 1000.0
    assert metadata_nphotons({"physics_parameters": {"N": 64}}) is None


def _ptychopinn_file(path: Path, counts: np.ndarray, **extra: Any) -> Path:
    """Written the way PtychoPINN writes: diff3d, intensities, JSON metadata, compressed."""
    metadata = {"schema_version": "1.0.0", "physics_parameters": {"nphotons": 1e3, "N": N}}
    np.savez_compressed(
        path,
        diff3d=np.moveaxis(counts, 0, -1).astype(np.float32),
        xcoords=np.linspace(10, 30, n),
        ycoords=np.linspace(10, 20, n),
        probeGuess=np.ones((N, N), dtype=np.complex64),
        objectGuess=np.ones((50, 50), dtype=np.complex64),
        _metadata=np.array(json.dumps(metadata)),
        **extra,
    )
    return path


def test_a_ptychopinn_file_loads_as_amplitudes_with_every_conversion_noted(
    tmp_path: Path, counts: np.ndarray
) -> None:
    split = load_split(_ptychopinn_file(tmp_path / "pinn.npz", counts))
    assert split.diffraction.shape == (n, N, N)
    assert split.diffraction.dtype == np.float32
    np.testing.assert_allclose(split.diffraction, np.sqrt(counts), rtol=1e-6)
    assert split.intensity_scale == pytest.approx(1.0)
    joined = " | ".join(split.notes)
    assert "'diff3d'" in joined
    assert "patterns-last" in joined
    assert "intensities" in joined


def test_detector_mask_is_read_and_an_empty_one_refused(tmp_path: Path, counts: np.ndarray) -> None:
    mask = np.ones((N, N), dtype=np.uint8)
    mask[0, :] = 0
    split = load_split(_ptychopinn_file(tmp_path / "m.npz", counts, detector_mask=mask))
    assert split.detector_mask is not None
    assert split.detector_mask.dtype == bool
    assert int(split.detector_mask.sum()) == N * N - N
    empty = _ptychopinn_file(tmp_path / "e.npz", counts, detector_mask=np.zeros((N, N)))
    with pytest.raises(ContractError, match="detector_mask"):
        load_split(empty)
