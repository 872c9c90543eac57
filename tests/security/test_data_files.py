"""Data files: oversized or inflating NPZ members and non-finite diffraction are refused, named."""

from __future__ import annotations

import io
import resource
import zipfile
from pathlib import Path

import numpy as np
import pytest

from app.study.contract import ContractError, load_split
from app.study.npz import ReadLimits, read_limits
from tests.api.conftest import write_split


def _replace_member(path: Path, name: str, npy: bytes) -> None:
    """Rewrite `path` with member `name`.npy replaced by `npy`, deflated."""
    with zipfile.ZipFile(path) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    members[f"{name}.npy"] = npy
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for member, data in members.items():
            archive.writestr(member, data)


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array)
    return buffer.getvalue()


def _lying_header(shape: tuple[int, ...]) -> bytes:
    """An .npy whose header declares `shape` (float32) but holds a few bytes."""
    buffer = io.BytesIO()
    header = {"descr": "<f4", "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue() + b"\0" * 64


def test_a_deflated_member_over_the_limit_is_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "bomb.npz"
    write_split(path)
    # 64 MiB of zeros deflates to ~64 KiB: small on disk, large once read.
    _replace_member(path, "diffraction", _npy(np.zeros((1024, 128, 128), dtype=np.float32)))
    assert path.stat().st_size < 1 << 20
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with (
        read_limits(ReadLimits(max_member_bytes=8 << 20)),
        pytest.raises(ContractError) as refused,
    ):
        load_split(path)
    assert refused.value.key == "diffraction"
    assert refused.value.path == path
    assert "at most 8388608 bytes" in str(refused.value)
    grew_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before
    assert grew_kib < 32 << 10  # never inflated (64 MiB would show)


def test_a_header_declaring_more_than_its_member_holds_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "lying.npz"
    write_split(path)
    _replace_member(path, "diffraction", _lying_header((100_000, 1024, 1024)))  # 400 GB
    with pytest.raises(ContractError, match=r"'diffraction'.*bytes declared"):
        load_split(path)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_diffraction_is_refused_with_file_and_key(tmp_path: Path, bad: float) -> None:
    path = tmp_path / "nan.npz"
    write_split(path)
    diffraction = np.ones((4, 8, 8), dtype=np.float32)
    diffraction[1, 2, 3] = bad
    _replace_member(path, "diffraction", _npy(diffraction))
    with pytest.raises(ContractError) as refused:
        load_split(path)
    assert refused.value.key == "diffraction"
    assert refused.value.path == path
    assert "1 NaN or infinite values of 256" in str(refused.value)


def test_all_nan_diffraction_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "all-nan.npz"
    write_split(path)
    _replace_member(path, "diffraction", _npy(np.full((4, 8, 8), np.nan, dtype=np.float32)))
    with pytest.raises(ContractError, match=r"nan.npz: key 'diffraction': expected finite"):
        load_split(path)


def test_a_file_within_the_limits_loads(tmp_path: Path) -> None:
    path = tmp_path / "good.npz"
    write_split(path)
    with read_limits(ReadLimits(root=tmp_path, max_member_bytes=1 << 20)):
        assert load_split(path).n == 4
