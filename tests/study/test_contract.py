"""The NPZ contract: what loads, what is refused, and how the refusal reads."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.study.contract import ContractError, load_split

N, n = 16, 5


def _arrays() -> dict[str, Any]:
    rng = np.random.default_rng(0)
    return {
        "diffraction": rng.random((n, N, N)).astype(np.float32),
        "xcoords": np.linspace(10, 20, n),
        "ycoords": np.linspace(5, 9, n),
        "probeGuess": np.ones((N, N), dtype=np.complex64),
        "objectGuess": np.ones((40, 40), dtype=np.complex64),
    }


def _write(tmp_path: Path, arrays: dict[str, Any], name: str = "split.npz") -> Path:
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


def test_minimal_file_loads_with_defaults(tmp_path: Path) -> None:
    data = load_split(_write(tmp_path, _arrays()))
    assert (data.n, data.N) == (n, N)
    assert data.diffraction.dtype == np.float32
    assert data.probe.dtype == np.complex64
    np.testing.assert_array_equal(data.xcoords_start, data.xcoords)
    np.testing.assert_array_equal(data.scan_index, np.zeros(n, dtype=np.int64))
    assert data.Y is None
    assert data.metadata == {}
    assert data.intensity_scale is None


def test_ptychopinn_style_file_with_extras_and_broken_y_loads(tmp_path: Path) -> None:
    arrays = _arrays()
    arrays["diffraction"] = arrays["diffraction"].astype(np.float64)
    arrays["Y"] = np.ones((1, N, N, 1), dtype=np.complex64)  # broken: not per pattern
    arrays["ground_truth_patches"] = np.ones((n, N, N), dtype=np.complex64)
    arrays["coords_start_offsets"] = np.zeros((n, 1, 2, 1))
    arrays["scan_index"] = np.zeros(n, dtype=np.int32)
    meta = json.dumps({"intensity_scale": 3.5, "dose": 1000.0})
    arrays["_metadata"] = np.array(meta, dtype=object)  # 0-d object array (pickled)
    data = load_split(_write(tmp_path, arrays))
    assert data.Y is None
    assert data.intensity_scale == 3.5
    assert data.metadata["dose"] == 1000.0
    assert data.diffraction.dtype == np.float32


def test_valid_y_and_string_metadata_are_read(tmp_path: Path) -> None:
    arrays = _arrays()
    arrays["Y"] = np.full((n, N, N), 2 + 1j, dtype=np.complex128)
    arrays["_metadata"] = np.array(json.dumps({"intensity_scale": 2.0}))
    data = load_split(_write(tmp_path, arrays))
    assert data.Y is not None
    assert data.Y.dtype == np.complex64
    assert data.Y.shape == (n, N, N)
    assert data.intensity_scale == 2.0


def test_unreadable_metadata_is_ignored(tmp_path: Path) -> None:
    arrays = _arrays()
    arrays["_metadata"] = np.array("{not json")
    assert load_split(_write(tmp_path, arrays)).metadata == {}


def _broken(name: str) -> tuple[str, dict[str, Any]]:
    arrays = _arrays()
    if name == "missing":
        del arrays["ycoords"]
        return "ycoords", arrays
    if name == "real_probe":
        arrays["probeGuess"] = np.ones((N, N))
        return "probeGuess", arrays
    if name == "real_object":
        arrays["objectGuess"] = np.ones((40, 40), dtype=np.float32)
        return "objectGuess", arrays
    if name == "short_coords":
        arrays["xcoords"] = arrays["xcoords"][:-1]
        return "xcoords", arrays
    if name == "integer_diffraction":
        arrays["diffraction"] = np.ones((n, N, N), dtype=np.int32)
        return "diffraction", arrays
    if name == "not_square":
        arrays["diffraction"] = np.ones((n, N, N + 2), dtype=np.float32)
        return "diffraction", arrays
    if name == "four_d":
        arrays["diffraction"] = np.ones((n, N, N, 1), dtype=np.float32)
        return "diffraction", arrays
    arrays["probeGuess"] = np.ones((N + 1, N + 1), dtype=np.complex64)  # probe_shape
    return "probeGuess", arrays


BROKEN = [
    "missing", "real_probe", "real_object", "short_coords", "integer_diffraction",
    "not_square", "four_d", "probe_shape",
]  # fmt: skip


@pytest.mark.parametrize("variant", BROKEN)
def test_broken_variant_is_refused_naming_the_key(tmp_path: Path, variant: str) -> None:
    key, arrays = _broken(variant)
    path = _write(tmp_path, arrays)
    with pytest.raises(ContractError) as info:
        load_split(path)
    error = info.value
    assert error.key == key
    assert error.path == path
    assert error.expected
    assert str(error).startswith(f"{path}: key '{key}': expected ")


def test_error_message_reads_like_the_contract(tmp_path: Path) -> None:
    _, arrays = _broken("real_probe")
    path = _write(tmp_path, arrays, "patched_train.npz")
    with pytest.raises(ContractError) as info:
        load_split(path)
    assert str(info.value) == (
        f"{path}: key 'probeGuess': expected complex array of shape (N, N), got float64 (16, 16)"
    )


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nothing\.npz"):
        load_split(tmp_path / "nothing.npz")


def test_not_an_npz_is_a_contract_error(tmp_path: Path) -> None:
    path = tmp_path / "junk.npz"
    path.write_text("not a zip")
    with pytest.raises(ContractError, match="expected an NPZ archive"):
        load_split(path)


def test_pickled_required_key_is_refused_without_running_it(tmp_path: Path) -> None:
    arrays = _arrays()
    arrays["xcoords"] = np.array([Path("x")] * n, dtype=object)
    with pytest.raises(ContractError) as info:
        load_split(_write(tmp_path, arrays))
    assert info.value.key == "xcoords"


def test_a_contract_error_survives_pickling_with_its_fields() -> None:
    error = ContractError("/data/a.npz", "probeGuess", "a complex array", "float32 (8, 8)")
    copy = pickle.loads(pickle.dumps(error))
    assert isinstance(copy, ContractError)
    assert (copy.path, copy.key, copy.expected, copy.got) == (
        error.path, error.key, error.expected, error.got,
    )  # fmt: skip
    assert str(copy) == str(error)
