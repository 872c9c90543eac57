"""Split NPZ files: written uncompressed, atomically and in chunks; read within limits.

Reading: `open_archive` opens the file as the current `read_limits` say (confined to a
root without following a symlink, when a worker sets one), and `check_member` reads a
member's header only and refuses it before a byte of its data is inflated or allocated:
a declared size over the limit or over the member's own stored size, a deflated member that
would expand more than MAX_INFLATION times its compressed size (past INFLATION_FLOOR), or a
pickled member larger than MAX_PICKLED_BYTES.
"""

from __future__ import annotations

import json
import math
import os
import zipfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from app.paths import open_binary

DEFAULT_MAX_MEMBER_BYTES = 4 << 30  # Settings.max_npz_member_bytes
# Deflate expands at most ~1032x; real diffraction compresses 4x (1e5 photons per pattern)
# to ~370x (10 photons). Past the floor, a member may not expand more than this.
MAX_INFLATION = 500
INFLATION_FLOOR = 64 << 20
# A pickled member holds at most a string (PtychoPINN's JSON `_metadata`) of this size.
MAX_PICKLED_BYTES = 1 << 20


class MemberRefused(ValueError):
    """An NPZ member refused from its header alone: names it, what was expected and found."""

    def __init__(self, name: str, expected: str, got: str) -> None:
        self.name = name
        self.expected = expected
        self.got = got
        super().__init__(f"member {name!r}: expected {expected}, got {got}")


class MemberTooLarge(MemberRefused):
    """An NPZ member whose declared size is over the limit (or over its own stored size)."""

    def __init__(self, name: str, declared: int, limit: int) -> None:
        self.declared = declared
        self.limit = limit
        super().__init__(name, f"an array of at most {limit} bytes", f"{declared} bytes declared")


@dataclass(frozen=True)
class MemberHeader:
    """What an .npy member's header declares, read without its data."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype[Any]

    @property
    def pickled(self) -> bool:
        return bool(self.dtype.hasobject)

    def describe(self) -> str:
        return f"{self.dtype} {self.shape}"


@dataclass(frozen=True)
class ReadLimits:
    """How NPZ files are read: confined to `root` (None: as given), members size-capped."""

    root: Path | None = None
    max_member_bytes: int = DEFAULT_MAX_MEMBER_BYTES


_DEFAULT_LIMITS = ReadLimits()
_LIMITS: ContextVar[ReadLimits | None] = ContextVar("npz_read_limits", default=None)


def current_limits() -> ReadLimits:
    """The limits NPZ reads are under here and now."""
    return _LIMITS.get() or _DEFAULT_LIMITS


@contextmanager
def read_limits(limits: ReadLimits) -> Iterator[None]:
    """Read NPZ files under `limits` inside this block (a worker's job, say)."""
    token = _LIMITS.set(limits)
    try:
        yield
    finally:
        _LIMITS.reset(token)


@contextmanager
def open_archive(path: Path) -> Iterator[zipfile.ZipFile]:
    """The NPZ at `path` as a zip archive, opened as the current read limits say."""
    root = current_limits().root
    with (
        open_binary(path, root=root) if root is not None else path.open("rb") as handle,
        zipfile.ZipFile(handle) as archive,
    ):
        yield archive


def check_member(archive: zipfile.ZipFile, member: str) -> MemberHeader | None:
    """Refuse `member` (an .npy) from its header alone (see the module docstring).

    Returns its header, or None when it has no array header (the reader reports that).
    """
    limit = current_limits().max_member_bytes
    name = member.removesuffix(".npy")
    info = archive.getinfo(member)
    if info.file_size > limit:
        raise MemberTooLarge(name, info.file_size, limit)
    inflation_cap = max(info.compress_size * MAX_INFLATION, INFLATION_FLOOR)
    if info.compress_type != zipfile.ZIP_STORED and info.file_size > inflation_cap:
        raise MemberRefused(
            name,
            f"a member that inflates at most {MAX_INFLATION}x",
            f"{info.compress_size} compressed bytes declaring {info.file_size}",
        )
    header = _read_header(archive, info, name)
    if header is None:
        return None
    if header.pickled:
        if info.file_size > MAX_PICKLED_BYTES:
            expected = f"a pickled member of at most {MAX_PICKLED_BYTES} bytes"
            raise MemberRefused(name, expected, f"{info.file_size} bytes")
        return header
    declared = math.prod(header.shape) * header.dtype.itemsize
    if declared > limit or declared > info.file_size:
        raise MemberTooLarge(name, declared, min(limit, info.file_size))
    return header


def _read_header(archive: zipfile.ZipFile, info: zipfile.ZipInfo, name: str) -> MemberHeader | None:
    with archive.open(info) as handle:
        try:
            version = np.lib.format.read_magic(handle)
            read_header = (
                np.lib.format.read_array_header_1_0
                if version == (1, 0)
                else np.lib.format.read_array_header_2_0
            )
            shape, _, dtype = read_header(handle)
        except ValueError:
            return None
    return MemberHeader(name, tuple(int(size) for size in shape), dtype)


class NpzWriter:
    """An `.npz` written member by member to `<path>.tmp`, renamed into place on success.

    `np.load` reads the result like any `np.savez` file. `add_chunks` streams an array whose
    rows arrive in pieces, so a large array never has to exist whole in memory.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.with_name(self.path.name + ".tmp")
        self._zip = zipfile.ZipFile(self._tmp, "w", zipfile.ZIP_STORED, allowZip64=True)

    def add(self, name: str, array: Any) -> None:
        """Write one whole array (or scalar) as member `name`."""
        with self._zip.open(f"{name}.npy", "w", force_zip64=True) as handle:
            np.lib.format.write_array(handle, np.asanyarray(array), allow_pickle=False)

    def add_chunks(
        self, name: str, shape: tuple[int, ...], dtype: Any, chunks: Iterable[np.ndarray]
    ) -> None:
        """Write member `name` of `shape` from row blocks that arrive in order."""
        dtype = np.dtype(dtype)
        header = {
            "descr": np.lib.format.dtype_to_descr(dtype),
            "fortran_order": False,
            "shape": shape,
        }
        rows = 0
        with self._zip.open(f"{name}.npy", "w", force_zip64=True) as handle:
            np.lib.format.write_array_header_1_0(handle, header)
            for chunk in chunks:
                block = np.ascontiguousarray(chunk, dtype=dtype)
                if block.shape[1:] != shape[1:]:
                    raise ValueError(f"{name}: chunk of shape {block.shape} does not fit {shape}")
                rows += block.shape[0]
                # A flat byte view: zipfile counts len(data), which must be the byte count.
                handle.write(block.data.cast("B"))
        if rows != shape[0]:
            raise ValueError(f"{name}: wrote {rows} rows, expected {shape[0]}")

    def add_metadata(self, metadata: dict[str, Any]) -> None:
        """The `_metadata` member: a 0-d string array holding JSON."""
        self.add("_metadata", np.array(json.dumps(metadata, sort_keys=True, default=str)))

    def close(self) -> None:
        self._zip.close()
        os.replace(self._tmp, self.path)

    def abort(self) -> None:
        self._zip.close()
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> NpzWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
