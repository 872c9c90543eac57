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
import math
import pickle
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from app.study.diffraction import read_diffraction
from app.study.npz import MemberHeader, MemberRefused, check_member, open_archive
from app.study.pickled import read_pickled_string

logger = logging.getLogger(__name__)

REQUIRED_KEYS = ("diffraction", "objectGuess", "probeGuess", "xcoords", "ycoords")
OPTIONAL_KEYS = (
    "xcoords_start", "ycoords_start", "scan_index", "Y", "_metadata", "detector_mask",
)  # fmt: skip
# PtychoPINN's name for the diffraction stack, read when `diffraction` is absent.
DIFFRACTION_ALIAS = "diff3d"
# Exit status of `python -m worker.training` and `worker.reconstruction` when a data file
# breaks the contract (sysexits' EX_DATAERR): cluster executors fail such a job at once.
BAD_INPUT_EXIT = 65


class ContractError(ValueError):
    """A split file that breaks the contract: names the file, the key and what was expected."""

    def __init__(self, path: str | Path, key: str | None, expected: str, got: str) -> None:
        self.path = Path(path)
        self.key = key
        self.expected = expected
        self.got = got
        where = f"{self.path}: key '{key}'" if key is not None else str(self.path)
        super().__init__(f"{where}: expected {expected}, got {got}")

    def __reduce__(self) -> tuple[type[ContractError], tuple[Path, str | None, str, str]]:
        # Pickled with its own fields (a Ray task's error crosses processes this way).
        return (type(self), (self.path, self.key, self.expected, self.got))


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
    """The contract's keys of the file: every header checked before any data is read."""
    with _archive_of(path) as archive:  # confined, when the caller set read limits
        present = {
            name.removesuffix(".npy") for name in archive.namelist() if name.endswith(".npy")
        }
        # Extra keys (PtychoPINN's ground_truth_patches, …) are never read.
        wanted = (*REQUIRED_KEYS, *OPTIONAL_KEYS, DIFFRACTION_ALIAS)
        headers = {key: check_member(archive, f"{key}.npy") for key in wanted if key in present}
        chosen = _screen_headers(path, headers)
        arrays = {name: _read_member(path, archive, name, headers[name]) for name in chosen}
    return {name: array for name, array in arrays.items() if array is not None}


@contextmanager
def _archive_of(path: Path) -> Iterator[zipfile.ZipFile]:
    """`open_archive`, its refusals and read errors as ContractErrors naming the file."""
    try:
        with open_archive(path) as archive:
            yield archive
    except MemberRefused as exc:
        raise ContractError(path, exc.name, exc.expected, exc.got) from exc
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise ContractError(path, None, "an NPZ archive", f"unreadable file ({exc})") from exc


def _screen_headers(path: Path, headers: dict[str, MemberHeader | None]) -> list[str]:
    """The members worth reading, smallest first; refuses broken required ones by header.

    Only `_metadata` may be pickled. The large members (diffraction, objectGuess, `Y`) must
    declare the kind and rank the contract wants, and `Y` the diffraction's shape, so none is
    inflated only to be refused or ignored.
    """
    chosen = []
    diffraction = headers.get("diffraction") or headers.get(DIFFRACTION_ALIAS)
    for name, header in headers.items():
        if header is not None and header.pickled and name != "_metadata":
            if name in REQUIRED_KEYS or name == DIFFRACTION_ALIAS:
                raise ContractError(path, name, "a numeric array", "a pickled object array")
            logger.info("%s: ignoring pickled optional key '%s'", path, name)
            continue
        if header is not None and not _header_fits(name, header, diffraction):
            if name == "Y" or name == "detector_mask":
                logger.info("%s: ignoring malformed optional key '%s' (%s)", path, name,
                            header.describe())  # fmt: skip
                continue
            key = "diffraction" if name == DIFFRACTION_ALIAS else name
            raise ContractError(path, key, _HEADER_EXPECTED[name], header.describe())
        chosen.append(name)
    return sorted(chosen, key=lambda name: _declared_bytes(headers[name]))


_HEADER_EXPECTED = {
    "diffraction": "real floating array of shape (n, N, N)",
    DIFFRACTION_ALIAS: "real floating array of shape (n, N, N)",
    "objectGuess": "complex array of shape (H, W)",
    "probeGuess": "complex array of shape (N, N)",
}


def _header_fits(name: str, header: MemberHeader, diffraction: MemberHeader | None) -> bool:
    """Whether a large member's header is one the contract could accept."""
    kind, rank = header.dtype.kind, len(header.shape)
    if name in ("diffraction", DIFFRACTION_ALIAS):
        return kind == "f" and rank == 3
    if name in ("objectGuess", "probeGuess"):
        return kind == "c" and rank == 2
    if name not in ("Y", "detector_mask"):
        return True  # small members: checked once read
    if diffraction is None or len(diffraction.shape) != 3:
        return False
    first, middle, last = diffraction.shape
    sizes = {middle, last} if first != middle else {first, middle}
    if name == "detector_mask":
        return kind in "biuf" and rank == 2 and header.shape[0] == header.shape[1] in sizes
    layouts = {(first, middle, last), (last, first, middle)}
    if rank == 4 and header.shape[3] == 1:  # PtychoPINN's (n, N, N, 1)
        return kind == "c" and header.shape[:3] in layouts
    return kind == "c" and header.shape in layouts


def _declared_bytes(header: MemberHeader | None) -> int:
    if header is None or header.pickled:
        return 0
    return math.prod(header.shape) * header.dtype.itemsize


def _read_member(
    path: Path, archive: zipfile.ZipFile, name: str, header: MemberHeader | None
) -> np.ndarray | None:
    """One array (its header already checked); `_metadata` may be a pickled string."""
    with archive.open(f"{name}.npy") as handle:
        try:
            if header is not None and header.pickled:
                return np.asarray(read_pickled_string(handle))
            return np.lib.format.read_array(handle, allow_pickle=False)
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as exc:
            if name in REQUIRED_KEYS or name == DIFFRACTION_ALIAS:
                raise ContractError(path, name, "a readable numeric array", str(exc)) from exc
            logger.warning("%s: ignoring key '%s' that could not be decoded: %s", path, name, exc)
            return None


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
    with _archive_of(path) as archive:  # confined and bounded like a split
        if f"{key}.npy" not in archive.namelist():
            raise ContractError(path, key, missing, "missing")
        header = check_member(archive, f"{key}.npy")
        fits = header is not None and header.dtype.kind == "c"
        if header is not None and not (fits and header.shape == (size, size)):
            raise ContractError(path, key, expected, header.describe())
        array = _read_member(path, archive, key, header)
    if array is None or array.dtype.kind != "c" or array.shape != (size, size):
        raise ContractError(path, key, expected, "unreadable" if array is None else describe(array))
    return array
