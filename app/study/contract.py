"""The study's NPZ data contract (study.md §3): load one split file and refuse broken ones.

Files written by PtychoPINN load too: extra keys are ignored, a malformed optional key
(`Y` of shape (1, N, N, 1), unreadable `_metadata`) is treated as absent, and the
diffraction may come as `diff3d`, patterns last (N, N, n), or as intensities
(app.study.diffraction); what was converted is listed in `SplitData.notes`.
An optional `detector_mask` (N, N) marks the detector pixels that count (non-zero).
"""

from __future__ import annotations

import json
import logging
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from app.study.diffraction import read_diffraction
from app.study.npz import MemberTooLarge, check_member, open_archive

logger = logging.getLogger(__name__)

REQUIRED_KEYS = ("diffraction", "objectGuess", "probeGuess", "xcoords", "ycoords")
OPTIONAL_KEYS = (
    "xcoords_start", "ycoords_start", "scan_index", "Y", "_metadata", "detector_mask",
)  # fmt: skip
# PtychoPINN's name for the diffraction stack, read when `diffraction` is absent.
DIFFRACTION_ALIAS = "diff3d"


class ContractError(ValueError):
    """A split file that breaks the contract: names the file, the key and what was expected."""

    def __init__(self, path: str | Path, key: str | None, expected: str, got: str) -> None:
        self.path = Path(path)
        self.key = key
        self.expected = expected
        self.got = got
        where = f"{self.path}: key '{key}'" if key is not None else str(self.path)
        super().__init__(f"{where}: expected {expected}, got {got}")


@dataclass(frozen=True)
class SplitData:
    """One validated split: per-pattern arrays, the probe, the object and provenance."""

    path: Path
    diffraction: np.ndarray  # float32 (n, N, N): sqrt(counts) / intensity_scale, fftshifted
    xcoords: np.ndarray  # float64 (n,): patch centres in object pixels
    ycoords: np.ndarray
    xcoords_start: np.ndarray
    ycoords_start: np.ndarray
    scan_index: np.ndarray  # int64 (n,)
    probe: np.ndarray  # complex64 (N, N)
    obj: np.ndarray  # complex64 (H, W)
    Y: np.ndarray | None  # complex64 (n, N, N) ground-truth patches, when present and valid
    metadata: dict[str, Any] = field(default_factory=dict)
    detector_mask: np.ndarray | None = None  # bool (N, N): pixels that count
    notes: tuple[str, ...] = ()  # conversions made while reading, for the job's log
    scale_hint: float | None = None  # intensity scale the photon quantum implies
    has_object: bool = True  # False: no objectGuess in the file (obj is empty)

    @property
    def n(self) -> int:
        return int(self.diffraction.shape[0])

    @property
    def N(self) -> int:  # noqa: N802 -- the physics' own name for the patch size
        return int(self.diffraction.shape[1])

    @property
    def intensity_scale(self) -> float | None:
        """The recorded intensity scale, else the one the photon quantum implies."""
        value = self.metadata.get("intensity_scale")
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        return self.scale_hint


def describe(array: np.ndarray) -> str:
    """`float64 (64, 64)`: how an array is named in contract errors."""
    return f"{array.dtype} {tuple(array.shape)}"


def load_split(path: str | Path, *, object_required: bool = True) -> SplitData:
    """Load a split NPZ and check it against the contract; raise ContractError if broken.

    `object_required=False` (reconstructing data without ground truth) lets `objectGuess`
    be absent: `obj` is then empty, (0, 0), and `has_object` False.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"split file not found: {path}")
    arrays = _read_arrays(path)
    notes: list[str] = []
    if "diffraction" not in arrays and DIFFRACTION_ALIAS in arrays:
        arrays["diffraction"] = arrays.pop(DIFFRACTION_ALIAS)
        notes.append(f"diffraction read from '{DIFFRACTION_ALIAS}'")
    optional = () if object_required else ("objectGuess",)
    missing = [key for key in REQUIRED_KEYS if key not in arrays and key not in optional]
    if missing:
        raise ContractError(path, missing[0], "a required array", "missing")
    metadata = _read_metadata(path, arrays.get("_metadata"))
    raw = arrays["diffraction"]
    if raw.dtype.kind != "f":
        raise ContractError(path, "diffraction", "real floating array of shape (n, N, N)",
                            describe(raw))  # fmt: skip
    positions = arrays["xcoords"].shape[0] if arrays["xcoords"].ndim == 1 else raw.shape[0]
    reading = read_diffraction(raw, positions, metadata)
    diffraction = _check_diffraction(path, reading.amplitudes)
    n, size = diffraction.shape[0], diffraction.shape[1]
    xcoords = _check_coords(path, arrays, "xcoords", n)
    ycoords = _check_coords(path, arrays, "ycoords", n)
    return SplitData(
        path=path,
        diffraction=diffraction,
        xcoords=xcoords,
        ycoords=ycoords,
        xcoords_start=_optional_coords(path, arrays, "xcoords_start", n, xcoords),
        ycoords_start=_optional_coords(path, arrays, "ycoords_start", n, ycoords),
        scan_index=_check_scan_index(path, arrays, n),
        probe=_check_complex(path, arrays["probeGuess"], "probeGuess", (size, size)),
        obj=_object(path, arrays),
        has_object="objectGuess" in arrays,
        Y=_optional_patches(path, arrays, n, size),
        metadata=metadata,
        detector_mask=_optional_mask(path, arrays, size),
        notes=(*notes, *reading.notes),
        scale_hint=reading.intensity_scale,
    )


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    try:
        with open_archive(path) as archive:  # confined, when the caller set read limits
            present = {name.removesuffix(".npy") for name in archive.namelist()}
            # Extra keys (PtychoPINN's ground_truth_patches, …) are never read.
            wanted = (*REQUIRED_KEYS, *OPTIONAL_KEYS, DIFFRACTION_ALIAS)
            names = [key for key in wanted if key in present]
            arrays = {name: _read_member(path, archive, name) for name in names}
    except MemberTooLarge as exc:
        expected = f"an array of at most {exc.limit} bytes"
        raise ContractError(path, exc.name, expected, f"{exc.declared} bytes declared") from exc
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise ContractError(path, None, "an NPZ archive", f"unreadable file ({exc})") from exc
    return {name: array for name, array in arrays.items() if array is not None}


def _read_member(path: Path, archive: zipfile.ZipFile, name: str) -> np.ndarray | None:
    """One array; pickled ones (PtychoPINN's object `_metadata`) with a numpy-only loader."""
    check_member(archive, f"{name}.npy")  # before anything is allocated for it
    with archive.open(f"{name}.npy") as handle:
        try:
            return np.lib.format.read_array(handle, allow_pickle=False)
        except ValueError as exc:
            refused = exc
    with archive.open(f"{name}.npy") as handle:
        try:
            version = np.lib.format.read_magic(handle)
            if version == (1, 0):
                _, _, dtype = np.lib.format.read_array_header_1_0(handle)
            else:
                _, _, dtype = np.lib.format.read_array_header_2_0(handle)
            if not dtype.hasobject:
                raise refused
            return _ArrayOnlyUnpickler(handle).load()  # type: ignore[no-any-return]
        except (pickle.UnpicklingError, EOFError, AttributeError, ValueError) as exc:
            if name in REQUIRED_KEYS:
                raise ContractError(path, name, "a readable numeric array", str(exc)) from exc
            logger.warning("%s: ignoring key '%s' that could not be decoded: %s", path, name, exc)
            return None


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """Decodes pickled object arrays of plain values; refuses anything that could run code."""

    _ALLOWED: ClassVar[frozenset[tuple[str, str]]] = frozenset(
        {
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("numpy.core.multiarray", "scalar"),
            ("numpy._core.multiarray", "scalar"),
        }
    )

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _check_diffraction(path: Path, array: np.ndarray) -> np.ndarray:
    expected = "real floating array of shape (n, N, N)"
    if array.dtype.kind != "f" or array.ndim != 3 or array.shape[1] != array.shape[2]:
        raise ContractError(path, "diffraction", expected, describe(array))
    if array.shape[0] == 0:
        raise ContractError(path, "diffraction", "at least one pattern", describe(array))
    bad = int(np.count_nonzero(~np.isfinite(array)))
    if bad:
        got = f"{bad} NaN or infinite values of {array.size}"
        raise ContractError(path, "diffraction", "finite amplitudes", got)
    return np.ascontiguousarray(array, dtype=np.float32)


def _check_coords(path: Path, arrays: dict[str, np.ndarray], key: str, n: int) -> np.ndarray:
    array = np.asarray(arrays[key])
    if array.dtype.kind not in "iuf" or array.shape != (n,):
        expected = f"real array of shape ({n},) matching diffraction.shape[0]"
        raise ContractError(path, key, expected, describe(array))
    if not np.all(np.isfinite(array)):
        raise ContractError(path, key, "finite coordinates", "NaN or infinite values")
    return array.astype(np.float64)


def _optional_coords(
    path: Path, arrays: dict[str, np.ndarray], key: str, n: int, fallback: np.ndarray
) -> np.ndarray:
    if key not in arrays:
        return fallback.copy()
    return _check_coords(path, arrays, key, n)


def _check_scan_index(path: Path, arrays: dict[str, np.ndarray], n: int) -> np.ndarray:
    if "scan_index" not in arrays:
        return np.zeros(n, dtype=np.int64)
    array = np.asarray(arrays["scan_index"])
    if array.dtype.kind not in "iu" or array.shape != (n,):
        raise ContractError(path, "scan_index", f"integer array of shape ({n},)", describe(array))
    return array.astype(np.int64)


def _check_complex(
    path: Path, array: np.ndarray, key: str, shape: tuple[int, int] | None
) -> np.ndarray:
    expected = "complex array of shape " + ("(N, N)" if shape is not None else "(H, W)")
    if array.dtype.kind != "c" or array.ndim != 2:
        raise ContractError(path, key, expected, describe(array))
    if shape is not None and array.shape != shape:
        expected += f" with N = {shape[0]} (diffraction.shape[1])"
        raise ContractError(path, key, expected, describe(array))
    return np.ascontiguousarray(array, dtype=np.complex64)


def _optional_patches(
    path: Path, arrays: dict[str, np.ndarray], n: int, size: int
) -> np.ndarray | None:
    patches = arrays.get("Y")
    if patches is None:
        return None
    if patches.ndim == 4 and patches.shape[-1] == 1:
        patches = patches[..., 0]
    if patches.dtype.kind != "c" or patches.shape != (n, size, size):
        logger.info("%s: ignoring malformed optional key 'Y' (%s)", path, describe(patches))
        return None
    return np.ascontiguousarray(patches, dtype=np.complex64)


def _object(path: Path, arrays: dict[str, np.ndarray]) -> np.ndarray:
    if "objectGuess" not in arrays:
        return np.zeros((0, 0), dtype=np.complex64)
    return _check_complex(path, arrays["objectGuess"], "objectGuess", None)


def _optional_mask(path: Path, arrays: dict[str, np.ndarray], size: int) -> np.ndarray | None:
    mask = arrays.get("detector_mask")
    if mask is None:
        return None
    if mask.dtype.kind not in "biuf" or mask.shape != (size, size):
        logger.info("%s: ignoring malformed optional key 'detector_mask' (%s)", path,
                    describe(mask))  # fmt: skip
        return None
    valid = np.asarray(mask != 0)
    if not valid.any():
        raise ContractError(path, "detector_mask", "some pixels that count", "all zeros")
    return valid


def _read_metadata(path: Path, raw: np.ndarray | None) -> dict[str, Any]:
    if raw is None:
        return {}
    value: Any = raw.item() if raw.shape == () else None
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if isinstance(value, dict):
        return value
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            return parsed
    logger.info("%s: ignoring malformed optional key '_metadata'", path)
    return {}


def read_square_complex(
    path: str | Path, key: str, size: int, *, what: str, missing: str, expected: str
) -> np.ndarray:
    """`key` of an NPZ file, checked to be a complex (size, size) array.

    `what` names the file in a not-found error; `missing` and `expected` say what was
    expected when the key is absent or has the wrong kind or shape.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} file not found: {path}")
    with np.load(path, allow_pickle=False) as npz:
        if key not in npz.files:
            raise ContractError(path, key, missing, "missing")
        array: np.ndarray = npz[key]
    if array.dtype.kind != "c" or array.shape != (size, size):
        raise ContractError(path, key, expected, describe(array))
    return array
