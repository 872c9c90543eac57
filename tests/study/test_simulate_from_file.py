"""Phase C with the object (and probe) taken from a file instead of drawn."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from app.study.contract import ContractError, load_split
from app.study.objects import make_object
from app.study.probe import make_probe
from app.study.simulate import SimulationConfig, extract_patches, simulate_phase_c

N, SIZE = 16, 48


def _source(tmp_path: Path, size: int = SIZE) -> Path:
    obj = (make_object(size, np.random.default_rng(9)) * np.exp(0.3j)).astype(np.complex64)
    path = tmp_path / "sample.npz"
    np.savez(path, objectGuess=obj, probeGuess=make_probe(N).astype(np.complex64))
    return path


def test_object_and_probe_come_from_the_file(tmp_path: Path) -> None:
    source = _source(tmp_path)
    config = SimulationConfig(
        patch_size=N, object_size=SIZE, n_positions=40, doses=(1e4,),
        object_path=source, probe_path=source,
    )  # fmt: skip
    result = simulate_phase_c(config, tmp_path / "phase_c", workers=1)
    split = load_split(tmp_path / "phase_c" / "dose_10000" / "patched_train.npz")
    with np.load(source) as npz:
        np.testing.assert_array_equal(split.obj, npz["objectGuess"])
        np.testing.assert_array_equal(split.probe, npz["probeGuess"])
    assert split.Y is not None
    expected = extract_patches(split.obj, split.xcoords, split.ycoords, N)
    np.testing.assert_allclose(split.Y, expected, atol=1e-6)
    assert split.metadata["object"] == str(source)
    assert split.metadata["probe"] == str(source)
    manifest = json.loads(result.manifest_path.read_text())
    assert manifest["object"] == str(source)
    assert manifest["config"]["object_path"] == str(source)


def test_object_of_another_size_is_refused_naming_the_file(tmp_path: Path) -> None:
    source = _source(tmp_path, size=SIZE + 8)
    config = SimulationConfig(patch_size=N, object_size=SIZE, n_positions=40, doses=(1e4,),
                              object_path=source)  # fmt: skip
    with pytest.raises(ContractError, match=f"{SIZE}, {SIZE}") as info:
        simulate_phase_c(config, tmp_path / "phase_c", workers=1)
    assert info.value.path == source
    assert info.value.key == "objectGuess"
