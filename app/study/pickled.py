"""A pickled NPZ member read as what PtychoPINN stores there: one string, nothing else.

PtychoPINN writes `_metadata` as `np.array(json_text, dtype=object)`, which numpy pickles:
`_reconstruct(ndarray, (0,), b"b")`, then a BUILD with the state
`(1, (), dtype("O"), False, [json_text])`. `read_pickled_string` runs that pickle with
stand-ins for the three numpy names it may use, which refuse any other shape, dtype or
payload before numpy allocates anything: the result is the string itself, bounded by the
member's size (checked before reading). Anything else (a dict, a list, a class, a large
shape) is an `UnpicklingError`.
"""

from __future__ import annotations

import pickle
from typing import IO, Any

_RECONSTRUCT = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
}
_OBJECT_CODES = {"O", "O4", "O8"}


class _ArrayClass:
    """Stands in for numpy.ndarray: an argument of `_reconstruct`, never called."""


class _ObjectDtype:
    """Stands in for numpy.dtype("O"); takes the pickle's dtype state and ignores it."""

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple):
            raise pickle.UnpicklingError("malformed dtype state")


class _ObjectScalar:
    """Stands in for a 0-d object array: keeps its one string item."""

    value: str | bytes | None = None

    def __setstate__(self, state: Any) -> None:
        if not (isinstance(state, tuple) and len(state) == 5):
            raise pickle.UnpicklingError("malformed array state")
        _, shape, dtype, _, items = state
        if tuple(shape) not in ((), (1,)) or not isinstance(dtype, _ObjectDtype):
            raise pickle.UnpicklingError(f"refusing a pickled array of shape {shape}")
        if not (isinstance(items, list) and len(items) == 1 and isinstance(items[0], str | bytes)):
            raise pickle.UnpicklingError("refusing a pickled array that holds no single string")
        self.value = items[0]


def _reconstruct(cls: Any, shape: Any, typecode: Any) -> _ObjectScalar:
    if cls is not _ArrayClass or tuple(shape) != (0,) or typecode != b"b":
        raise pickle.UnpicklingError("refusing an unexpected array reconstruction")
    return _ObjectScalar()


def _dtype(code: Any, align: Any = False, copy: Any = True) -> _ObjectDtype:
    if code not in _OBJECT_CODES:
        raise pickle.UnpicklingError(f"refusing dtype {code!r} in a pickled member")
    return _ObjectDtype()


class _StringUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _RECONSTRUCT:
            return _reconstruct
        if (module, name) == ("numpy", "ndarray"):
            return _ArrayClass
        if (module, name) == ("numpy", "dtype"):
            return _dtype
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def read_pickled_string(handle: IO[bytes]) -> str:
    """The string a pickled 0-d object array holds; `handle` is at the .npy's start."""
    import numpy as np  # the header reader only

    version = np.lib.format.read_magic(handle)
    if version == (1, 0):
        np.lib.format.read_array_header_1_0(handle)
    else:
        np.lib.format.read_array_header_2_0(handle)
    loaded = _StringUnpickler(handle).load()
    if not isinstance(loaded, _ObjectScalar) or loaded.value is None:
        raise pickle.UnpicklingError("refusing a pickled member that is not a string array")
    value = loaded.value
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value
