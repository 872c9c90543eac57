"""HDF5 inputs: CXI files (diffraction) and Ptychodus product files (probe, object, positions).

CXI (cxidb.org's format): diffraction from `entry_1/data_1/data` (or the detector's
`data`), intensities with the zero frequency in the centre; the sample translation from
`entry_1/sample_1/geometry_1/translation` (metres); the detector distance and pixel size and
the source energy (J) give the object pixel, λ·z / (N·Δ); `detector_1/mask` (non-zero = bad
pixel) becomes the detector mask; a probe, when the file has one, from
`entry_1/instrument_1/source_1/probe` or `entry_1/probe`. The beam's position on the object
is taken as minus the sample's translation.

Ptychodus product files (`*.h5`, its H5ProductFileIO): `probe` (first mode), `object`
(first layer) with its pixel size and centre (metres) as attributes, and
`probe_position_x_m` / `_y_m`. Positions become object pixels with pixel centres at whole
numbers: x = (x_m − centre_x) / pixel_width + W/2 − 1/2.

`load_input(path, product=...)` returns a `SplitData` like an NPZ split: diffraction from
the NPZ or CXI file, and probe, object and positions from the product when one is given.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from app.study.contract import ContractError, SplitData, load_split
from app.study.diffraction import read_diffraction

HC_J_M = 6.62607015e-34 * 299_792_458.0
CXI_SUFFIXES = (".cxi",)
H5_SUFFIXES = (".h5", ".hdf5")
_CXI_DATA = ("entry_1/data_1/data", "entry_1/instrument_1/detector_1/data")
_CXI_PROBE = ("entry_1/instrument_1/source_1/probe", "entry_1/probe")
_CXI_DETECTOR = "entry_1/instrument_1/detector_1"


@dataclass(frozen=True)
class Product:
    """What a Ptychodus product file says about the scan, in object pixels."""

    probe: np.ndarray  # complex64 (N, N)
    obj: np.ndarray  # complex64 (H, W)
    xcoords: np.ndarray
    ycoords: np.ndarray
    metadata: dict[str, Any]


def _first_image(array: np.ndarray, path: Path, key: str) -> np.ndarray:
    while array.ndim > 2:
        array = array[0]
    if array.ndim != 2 or array.dtype.kind != "c":
        raise ContractError(
            path, key, "a complex 2-D array (or a stack of them)", f"{array.dtype} {array.shape}"
        )
    return np.ascontiguousarray(array, dtype=np.complex64)


def read_product(path: str | Path) -> Product:
    """Probe, object and positions (in object pixels) of a Ptychodus product file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"product file not found: {path}")
    with h5py.File(path, "r") as h5:
        for key in ("probe", "object", "probe_position_x_m", "probe_position_y_m"):
            if key not in h5:
                raise ContractError(path, key, "a Ptychodus product dataset", "missing")
        probe = _first_image(h5["probe"][()], path, "probe")
        h5_object = h5["object"]
        obj = _first_image(h5_object[()], path, "object")
        attrs = {
            k: float(h5_object.attrs[k])
            for k in ("center_x_m", "center_y_m", "pixel_width_m", "pixel_height_m")
        }
        x_m = np.asarray(h5["probe_position_x_m"][()], dtype=np.float64)
        y_m = np.asarray(h5["probe_position_y_m"][()], dtype=np.float64)
        metadata = {str(k): _plain(v) for k, v in h5.attrs.items()}
    height, width = obj.shape
    x = (x_m - attrs["center_x_m"]) / attrs["pixel_width_m"] + width / 2 - 0.5
    y = (y_m - attrs["center_y_m"]) / attrs["pixel_height_m"] + height / 2 - 0.5
    return Product(probe, obj, x, y, {**metadata, **attrs, "source": str(path)})


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, np.generic):
        return value.item()
    return value if isinstance(value, str | int | float) else str(value)


def _dataset(h5: h5py.File, names: tuple[str, ...]) -> np.ndarray | None:
    for name in names:
        if name in h5:
            return np.asarray(h5[name][()])
    return None


def read_cxi(path: Path) -> dict[str, Any]:
    """The arrays and geometry of a CXI file (see the module docstring)."""
    with h5py.File(path, "r") as h5:
        data = _dataset(h5, _CXI_DATA)
        if data is None:
            raise ContractError(path, _CXI_DATA[0], "diffraction intensities (n, N, N)", "missing")
        translation = _dataset(h5, ("entry_1/sample_1/geometry_1/translation",))
        geometry = {
            key: _dataset(h5, (f"{_CXI_DETECTOR}/{key}",))
            for key in ("distance", "x_pixel_size", "y_pixel_size")
        }
        energy = _dataset(h5, ("entry_1/instrument_1/source_1/energy",))
        mask = _dataset(h5, (f"{_CXI_DETECTOR}/mask",))
        probe = _dataset(h5, _CXI_PROBE)
    return {
        "data": data,
        "translation": translation,
        "energy": energy,
        "mask": mask,
        "probe": probe,
        **geometry,
    }


def cxi_pixel_size(path: Path, cxi: dict[str, Any], n: int) -> tuple[float, float]:
    """Object pixel (width, height) in metres: λ·z / (N·Δ)."""
    values = {k: cxi[k] for k in ("energy", "distance", "x_pixel_size", "y_pixel_size")}
    missing = [k for k, v in values.items() if v is None]
    if missing:
        raise ContractError(path, missing[0], "detector geometry to place the positions", "missing")
    wavelength = HC_J_M / float(values["energy"])
    distance = float(values["distance"])
    return (
        wavelength * distance / (n * float(values["x_pixel_size"])),
        wavelength * distance / (n * float(values["y_pixel_size"])),
    )


def load_cxi(path: Path, product: Product | None) -> SplitData:
    """A CXI file as a split; probe, object and positions from `product` when given."""
    cxi = read_cxi(path)
    raw = np.asarray(cxi["data"], dtype=np.float32)
    if raw.ndim != 3 or raw.shape[1] != raw.shape[2]:
        raise ContractError(path, _CXI_DATA[0], "intensities (n, N, N)", f"{raw.shape}")
    n_patterns, size = raw.shape[0], raw.shape[1]
    reading = read_diffraction(raw, n_patterns, {"diffraction_kind": "intensity"})
    notes = [f"diffraction read from CXI '{_CXI_DATA[0]}'", *reading.notes]
    if product is not None:
        probe, obj, x, y = product.probe, product.obj, product.xcoords, product.ycoords
        notes.append(f"probe, object and positions from {product.metadata['source']}")
    else:
        if cxi["probe"] is None or cxi["translation"] is None:
            raise ContractError(
                path,
                _CXI_PROBE[0],
                "a probe and translations, or a product file with them",
                "missing",
            )
        probe = _first_image(cxi["probe"], path, _CXI_PROBE[0])
        width, height = cxi_pixel_size(path, cxi, size)
        translation = np.asarray(cxi["translation"], dtype=np.float64)
        x = -translation[:, 0] / width
        y = -translation[:, 1] / height
        x, y = x - x.min() + size / 2, y - y.min() + size / 2
        shape = (math.ceil(y.max() + size / 2) + 1, math.ceil(x.max() + size / 2) + 1)
        obj = np.zeros(shape, dtype=np.complex64)
        notes.append(f"positions from the CXI translations at {width:.4g} m per pixel")
    _check_probe(path, probe, size)
    if len(x) != n_patterns:
        raise ContractError(
            path, "positions", f"{n_patterns} positions, one per pattern", str(len(x))
        )
    mask = None if cxi["mask"] is None else np.asarray(cxi["mask"]) == 0
    return SplitData(
        path=path,
        diffraction=np.ascontiguousarray(reading.amplitudes, dtype=np.float32),
        xcoords=x,
        ycoords=y,
        xcoords_start=x.copy(),
        ycoords_start=y.copy(),
        scan_index=np.zeros(n_patterns, dtype=np.int64),
        probe=probe,
        obj=obj,
        Y=None,
        metadata={},
        detector_mask=mask,
        notes=tuple(notes),
        scale_hint=reading.intensity_scale,
        has_object=product is not None,
    )


def _check_probe(path: Path, probe: np.ndarray, size: int) -> None:
    if probe.shape != (size, size):
        raise ContractError(
            path, "probe", f"a ({size}, {size}) probe like the diffraction", f"{probe.shape}"
        )


def load_input(
    path: str | Path, *, product: str | Path | None = None, object_required: bool = True
) -> SplitData:
    """An NPZ split or a CXI file; a Ptychodus product supplies probe, object, positions."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"split file not found: {path}")
    read = read_product(product) if product is not None else None
    if path.suffix.lower() in CXI_SUFFIXES:
        split = load_cxi(path, read)
        if object_required and not split.has_object:
            raise ContractError(path, "objectGuess", "an object (give a product file)", "missing")
        return split
    if path.suffix.lower() in H5_SUFFIXES:
        raise ContractError(
            path,
            None,
            "diffraction: a product file holds none; pass it as "
            "the product beside an NPZ or CXI file",
            "an HDF5 file",
        )
    split = load_split(path, object_required=object_required and read is None)
    if read is None:
        return split
    _check_probe(Path(product or ""), read.probe, split.N)
    if len(read.xcoords) != split.n:
        raise ContractError(
            Path(product or ""),
            "probe_position_x_m",
            f"{split.n} positions, one per pattern",
            str(len(read.xcoords)),
        )
    return dataclasses.replace(
        split,
        probe=read.probe,
        obj=read.obj,
        xcoords=read.xcoords,
        ycoords=read.ycoords,
        xcoords_start=read.xcoords.copy(),
        ycoords_start=read.ycoords.copy(),
        has_object=True,
        notes=(*split.notes, f"probe, object and positions from {read.metadata['source']}"),
    )
