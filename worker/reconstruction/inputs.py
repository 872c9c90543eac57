"""One split in pty-chi's units and geometry, and the reconstruction back in ours.

Units: a split stores diffraction = sqrt(counts) / s (s the intensity scale), so the
measured intensities are (diffraction · s)². Our simulator's far field is a unitary FFT and
pty-chi's an unnormalised one (N times larger), so pty-chi's probe is probeGuess · s / N
(times `probe_factor` when a file's probe and diffraction are in different units).

Geometry: our patch for position (x, y) starts at object pixel (y − N/2, x − N/2);
pty-chi's starts at position + origin − (N − 1)/2 in its object buffer. The buffer is the
object's rows and columns that the scan reaches, [top, bottom) × [left, right), padded by
MARGIN pixels on every side (pty-chi's Fourier-shift extraction reads a pixel beyond the
patch), so with the raw coordinates as positions the origin is
(MARGIN − top − ½, MARGIN − left − ½).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from app.study.contract import ContractError, SplitData
from app.study.diffraction import metadata_nphotons
from worker.training.data import intensity_scale, probe_factor

MARGIN = 2
INITIAL_OBJECT = 1.0 + 0.0j  # a fully transmitting object, no phase: the usual start


@dataclass(frozen=True)
class EngineInputs:
    """What pty-chi is given, and what it takes to map its results back."""

    intensities: np.ndarray  # float32 (n, N, N), zero frequency in the centre
    probe: np.ndarray  # complex64 (N, N), pty-chi's units
    xcoords: np.ndarray  # float64 (n,)
    ycoords: np.ndarray
    buffer: tuple[int, int, int, int]  # top, bottom, left, right: object rows and columns
    object_shape: tuple[int, int]
    probe_units: float  # pty-chi probe = probeGuess · probe_units
    intensity_scale: float

    @property
    def origin(self) -> tuple[float, float]:
        """pty-chi's position origin (row, column) in its buffer."""
        top, _, left, _ = self.buffer
        return (MARGIN - top - 0.5, MARGIN - left - 0.5)

    def initial_object(self) -> np.ndarray:
        """The buffer's starting object, complex64 (rows, columns)."""
        top, bottom, left, right = self.buffer
        shape = (bottom - top + 2 * MARGIN, right - left + 2 * MARGIN)
        return np.full(shape, INITIAL_OBJECT, dtype=np.complex64)

    def object_image(self, buffer: np.ndarray) -> np.ndarray:
        """pty-chi's buffer on the split's object grid (unreached pixels keep the start)."""
        top, bottom, left, right = self.buffer
        image = np.full(self.object_shape, INITIAL_OBJECT, dtype=np.complex64)
        image[top:bottom, left:right] = buffer[MARGIN:-MARGIN, MARGIN:-MARGIN]
        return image

    def buffer_of(self, image: np.ndarray) -> np.ndarray:
        """The buffer that holds `image` (on the split's object grid), complex64."""
        top, bottom, left, right = self.buffer
        region = np.asarray(image[top:bottom, left:right], dtype=np.complex64)
        return np.pad(region, MARGIN, constant_values=INITIAL_OBJECT)

    def probe_in_split_units(self, probe: np.ndarray) -> np.ndarray:
        """A pty-chi probe in the units of the split's probeGuess."""
        return (probe / self.probe_units).astype(np.complex64)


def resolve_nphotons(split: SplitData, nphotons: float | None) -> float | None:
    """The dose: the job's, else the one the file's metadata records, else None."""
    return nphotons if nphotons is not None else metadata_nphotons(split.metadata)


def scan_buffer(split: SplitData) -> tuple[int, int, int, int]:
    """Object rows [top, bottom) and columns [left, right) that any patch touches."""
    half = split.N / 2
    height, width = split.obj.shape
    top = max(math.floor(split.ycoords.min() - half), 0)
    left = max(math.floor(split.xcoords.min() - half), 0)
    bottom = min(math.ceil(split.ycoords.max() + half) + 1, height)
    right = min(math.ceil(split.xcoords.max() + half) + 1, width)
    return top, bottom, left, right


def engine_inputs(split: SplitData, nphotons: float | None) -> EngineInputs:
    """The split converted for pty-chi (see the module docstring)."""
    dose = resolve_nphotons(split, nphotons)
    recorded = split.intensity_scale
    if dose is None and not (recorded is not None and recorded > 0):
        raise ContractError(
            split.path, "_metadata", "an intensity scale or a dose (or give nphotons)", "neither"
        )
    # Without a dose the recorded scale decides, and the dose is never read.
    scale = intensity_scale(split, dose if dose is not None else 1.0)
    units = probe_factor(split) * scale / split.N
    intensities = np.square(split.diffraction.astype(np.float64) * scale).astype(np.float32)
    return EngineInputs(
        intensities=intensities,
        probe=(split.probe * units).astype(np.complex64),
        xcoords=split.xcoords.astype(np.float64),
        ycoords=split.ycoords.astype(np.float64),
        buffer=scan_buffer(split),
        object_shape=(int(split.obj.shape[0]), int(split.obj.shape[1])),
        probe_units=units,
        intensity_scale=scale,
    )
