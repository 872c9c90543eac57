"""Writing split NPZ files: uncompressed, atomic, and able to stream big arrays in chunks."""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np


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
