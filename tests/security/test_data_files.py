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


def _pickled(value: object) -> bytes:
    """An .npy of a 0-d object array holding `value`, pickled the way numpy does."""
    array = np.empty((), dtype=object)
    array[()] = value
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=True)
    return buffer.getvalue()


class _AllocatesOnLoad:
    """Unpickles as np.ndarray((1 << 28,), object): 2 GiB from a 224-byte member."""

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return (np.ndarray, ((1 << 28,), np.dtype(object)))


def test_a_pickled_metadata_that_allocates_is_ignored_without_allocating(
    tmp_path: Path,
) -> None:
    path = tmp_path / "pickle-bomb.npz"
    write_split(path)
    _replace_member(path, "_metadata", _pickled(_AllocatesOnLoad()))
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    split = load_split(path)
    grew_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before
    assert split.metadata == {}
    assert grew_kib < 64 << 10  # 2 GiB of pointers would show


def test_ptychopinn_pickled_json_metadata_is_still_read(tmp_path: Path) -> None:
    path = tmp_path / "pinn-metadata.npz"
    write_split(path)
    _replace_member(path, "_metadata", _pickled('{"nphotons": 1000.0, "intensity_scale": 2.5}'))
    split = load_split(path)
    assert split.metadata == {"nphotons": 1000.0, "intensity_scale": 2.5}
    assert split.intensity_scale == 2.5


@pytest.mark.parametrize("value", [[1.0, 2.0, 3.0, 4.0], {"x": 1.0}])
def test_a_pickled_required_key_is_refused_naming_file_and_key(
    tmp_path: Path, value: object
) -> None:
    path = tmp_path / "pickled-coords.npz"
    write_split(path)
    _replace_member(path, "xcoords", _pickled(value))
    with pytest.raises(ContractError) as refused:
        load_split(path)
    assert refused.value.key == "xcoords"
    assert refused.value.path == path
    assert "expected a numeric array, got a pickled object array" in str(refused.value)


def _stream_zeros_member(path: Path, name: str, shape: tuple[int, ...], dtype: str) -> None:
    """Append member `name`.npy of zeros to `path`, deflated, written 1 MiB at a time."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": np.dtype(dtype).str, "fortran_order": False, "shape": shape}
    )
    total = int(np.prod(shape)) * np.dtype(dtype).itemsize
    block = bytes(1 << 20)
    with (
        zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED) as archive,
        archive.open(f"{name}.npy", "w", force_zip64=True) as member,
    ):
        member.write(header.getvalue())
        for start in range(0, total, len(block)):
            member.write(block[: min(len(block), total - start)])


def test_a_deflate_bomb_in_an_optional_key_is_refused_before_inflating(tmp_path: Path) -> None:
    path = tmp_path / "y-bomb.npz"
    write_split(path)
    _stream_zeros_member(path, "Y", (4096, 128, 128), "<c8")  # 512 MiB of zeros
    assert path.stat().st_size < 2 << 20
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ContractError) as refused:
        load_split(path)  # under the default 4 GiB member limit: the inflation decides
    grew_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before
    assert refused.value.key == "Y"
    assert "inflates at most 500x" in str(refused.value)
    assert grew_kib < 64 << 10


def _record_reads(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, ...]]:
    """The shapes of the arrays numpy reads from here on."""
    shapes: list[tuple[int, ...]] = []
    real_read = np.lib.format.read_array

    def recording(*args: object, **kwargs: object) -> np.ndarray:
        array: np.ndarray = real_read(*args, **kwargs)  # type: ignore[arg-type]
        shapes.append(array.shape)
        return array

    monkeypatch.setattr(np.lib.format, "read_array", recording)
    return shapes


def test_headers_are_checked_before_any_member_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "real-probe.npz"
    write_split(path)
    _replace_member(path, "probeGuess", _npy(np.ones((8, 8), dtype=np.float32)))
    read = _record_reads(monkeypatch)
    with pytest.raises(ContractError, match=r"'probeGuess': expected complex array"):
        load_split(path)
    assert read == []  # refused from the header: not even the coordinates were read


def test_a_malformed_optional_patch_stack_is_never_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "bad-y.npz"
    write_split(path)
    _replace_member(path, "Y", _npy(np.ones((3, 8, 8), dtype=np.complex64)))  # n is 4
    read = _record_reads(monkeypatch)
    split = load_split(path)
    assert split.Y is None
    assert (3, 8, 8) not in read
    assert (4, 8, 8) in read  # the diffraction was
