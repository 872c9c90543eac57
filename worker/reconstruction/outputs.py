"""A reconstruction's files: reconstruction.npz and a Ptychodus product file.

Both hold the object on the split's object grid and the probe in the units of the split's
probeGuess, so either can stand in for the split's own object and probe (the product file
through `worker.training.h5_inputs.load_input(..., product=...)`).

The product follows Ptychodus' H5ProductFileIO: file attributes (name, comments, detector
distance, probe energy, photon count, exposure time), `probe` (modes, N, N) with its pixel
size, `object` (layers, H, W) with its centre and pixel size, the positions in metres,
`object_layer_distance_m` and `costs` (the loss per epoch). The study's data carry no
instrument geometry: one object pixel is written as PIXEL_SIZE_M, the object's centre at
0 m, and the unknown distance, energy and exposure as 0.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import h5py
import numpy as np

NPZ_NAME = "reconstruction.npz"
PRODUCT_NAME = "reconstruction_product.h5"
PNG_NAME = "reconstruction.png"
PIXEL_SIZE_M = 1e-8


@dataclass(frozen=True)
class Outcome:
    """What a reconstruction produced, on the split's grid and in its units."""

    obj: np.ndarray  # complex64 (H, W)
    probe: np.ndarray  # complex64 (N, N)
    xcoords: np.ndarray  # float64 (n,)
    ycoords: np.ndarray
    losses: list[float]


def npz_bytes(outcome: Outcome) -> bytes:
    """object, probe, positions (n, 2) as (x, y), loss_history (one value per epoch)."""
    positions = np.stack([outcome.xcoords, outcome.ycoords], axis=1)
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer,
        object=outcome.obj,
        probe=outcome.probe,
        positions=positions,
        loss_history=np.asarray(outcome.losses, dtype=np.float64),
    )
    return buffer.getvalue()


def product_bytes(outcome: Outcome, *, name: str, photon_count: float) -> bytes:
    """A Ptychodus product file (see the module docstring)."""
    height, width = outcome.obj.shape
    # Ptychodus places pixel centres at whole numbers round the object's centre.
    x_m = (outcome.xcoords - (width / 2 - 0.5)) * PIXEL_SIZE_M
    y_m = (outcome.ycoords - (height / 2 - 0.5)) * PIXEL_SIZE_M
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as h5:
        h5.attrs["name"] = name
        h5.attrs["comments"] = (
            f"pty-chi reconstruction by ptychojobs; nominal pixel size {PIXEL_SIZE_M:g} m"
        )
        h5.attrs["detector_object_distance_m"] = 0.0
        h5.attrs["probe_energy_eV"] = 0.0
        h5.attrs["probe_photon_count"] = float(photon_count)
        h5.attrs["exposure_time_s"] = 0.0
        h5.create_dataset("probe_position_indexes", data=np.arange(len(outcome.xcoords)))
        h5.create_dataset("probe_position_x_m", data=x_m)
        h5.create_dataset("probe_position_y_m", data=y_m)
        probe = h5.create_dataset("probe", data=outcome.probe[None])
        probe.attrs["pixel_width_m"] = PIXEL_SIZE_M
        probe.attrs["pixel_height_m"] = PIXEL_SIZE_M
        obj = h5.create_dataset("object", data=outcome.obj[None])
        obj.attrs["center_x_m"] = 0.0
        obj.attrs["center_y_m"] = 0.0
        obj.attrs["pixel_width_m"] = PIXEL_SIZE_M
        obj.attrs["pixel_height_m"] = PIXEL_SIZE_M
        h5.create_dataset("object_layer_distance_m", data=np.zeros(0, dtype=np.float64))
        h5.create_dataset("costs", data=np.asarray(outcome.losses, dtype=np.float64))
    return buffer.getvalue()
