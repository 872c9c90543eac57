"""Reading the diffraction array of files not written by us: layout, and amplitude or intensity.

The contract stores amplitudes, (n, N, N). PtychoPINN's own tools and experimental exports
also write `diff3d`, patterns last (N, N, n), and measured intensities. Each conversion is
returned as a note, so that training can state it in its log.

Amplitude or intensity: photon counts are whole numbers, so a file's positive values are
multiples of one quantum q (one photon): for amplitudes, sqrt(k)·q; for intensities, k·q.
Dividing by the smallest positive value tells the two apart, and gives the dataset's
intensity scale (1/q for amplitudes, 1/sqrt(q) for intensities). Data without that
granularity (noiseless simulations) fall back to `_metadata` (an explicit `diffraction_kind`,
or intensity scale and dose), and otherwise to the contract: amplitudes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

KINDS = ("amplitude", "intensity")
# Ratios to the quantum above this are left out of the whole-number test: float32 loses it.
_MAX_RATIO = 40.0
_WHOLE_TOLERANCE = 1e-3
_WHOLE_SHARE = 0.99


@dataclass(frozen=True)
class Reading:
    """Amplitudes (n, N, N), what was done to get them, and the scale the data imply."""

    amplitudes: np.ndarray
    notes: tuple[str, ...]
    kind: str  # what the file held: "amplitude" or "intensity"
    intensity_scale: float | None  # from the photon quantum, when the data show one


def patterns_first(array: np.ndarray, n_positions: int) -> tuple[np.ndarray, str | None]:
    """(n, N, N) from (n, N, N) or (N, N, n); the note says when it was transposed."""
    if array.ndim != 3:
        return array, None
    first, _, last = array.shape
    if first == n_positions and array.shape[1] == array.shape[2]:
        return array, None
    if last == n_positions and array.shape[0] == array.shape[1]:
        note = f"diffraction stored patterns-last {tuple(array.shape)}; read as (n, N, N)"
        return np.moveaxis(array, -1, 0), note
    return array, None


def photon_quantum(values: np.ndarray) -> tuple[str | None, float | None]:
    """("amplitude" | "intensity" | None, quantum): what the value granularity says."""
    flat = np.asarray(values, dtype=np.float64).ravel()
    positive = flat[flat > 0]
    if positive.size < 16:
        return None, None
    quantum = float(positive.min())
    ratio = positive / quantum
    # Values above one quantum decide: at one quantum both readings agree.
    ratio = ratio[(ratio > 1.0 + _WHOLE_TOLERANCE) & (ratio <= _MAX_RATIO)]
    if ratio.size < 16:
        return None, None
    if _whole_share(ratio) >= _WHOLE_SHARE:
        return "intensity", quantum
    if _whole_share(ratio**2) >= _WHOLE_SHARE:
        return "amplitude", quantum
    return None, None


def _whole_share(values: np.ndarray) -> float:
    return float(np.mean(np.abs(values - np.rint(values)) < _WHOLE_TOLERANCE))


def metadata_kind(metadata: dict[str, Any]) -> str | None:
    """An explicit `diffraction_kind` ("amplitude" / "intensity") in `_metadata`."""
    value = metadata.get("diffraction_kind")
    return value if value in KINDS else None


def metadata_nphotons(metadata: dict[str, Any]) -> float | None:
    """The dose a file records: ours (`dose`) or PtychoPINN's (`physics_parameters.nphotons`)."""
    physics = metadata.get("physics_parameters")
    candidates = [metadata.get("dose"), metadata.get("nphotons")]
    if isinstance(physics, dict):
        candidates.insert(0, physics.get("nphotons"))
    for value in candidates:
        if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
            return float(value)
    return None


def _parseval_kind(values: np.ndarray, metadata: dict[str, Any]) -> str | None:
    """With a recorded scale s and dose D: amplitudes give mean Σ(x·s)² ≈ D, intensities Σx·s²."""
    scale, dose = metadata.get("intensity_scale"), metadata_nphotons(metadata)
    if not isinstance(scale, int | float) or scale <= 0 or dose is None:
        return None
    per_pattern = values.reshape(len(values), -1).astype(np.float64)
    as_amplitude = float(np.mean(np.sum(per_pattern**2, axis=1))) * scale**2
    as_intensity = float(np.mean(np.sum(per_pattern, axis=1))) * scale**2
    if as_amplitude <= 0 or as_intensity <= 0:
        return None
    off_amplitude = abs(math.log(as_amplitude / dose))
    off_intensity = abs(math.log(as_intensity / dose))
    return "amplitude" if off_amplitude <= off_intensity else "intensity"


def read_diffraction(array: np.ndarray, n_positions: int, metadata: dict[str, Any]) -> Reading:
    """Amplitudes (n, N, N) from a file's diffraction array; see the module docstring."""
    notes: list[str] = []
    array, transposed = patterns_first(np.asarray(array), n_positions)
    if transposed:
        notes.append(transposed)
    quantum_kind, quantum = photon_quantum(array) if array.ndim == 3 else (None, None)
    kind = metadata_kind(metadata)
    how = "the file's _metadata"
    if kind is None and quantum_kind is not None:
        kind, how = quantum_kind, f"photon quantum {quantum:.6g}"
    if kind is None and array.ndim == 3:
        kind = _parseval_kind(array, metadata)
        how = "the recorded intensity scale and dose"
    if kind is None:
        kind, how = "amplitude", "the contract (values show no photon quantum)"
    scale = None
    if quantum is not None and quantum_kind == kind:
        scale = 1.0 / quantum if kind == "amplitude" else 1.0 / math.sqrt(quantum)
    if kind == "intensity":
        if np.any(array < 0):
            clipped = int(np.count_nonzero(array < 0))
            notes.append(f"{clipped} negative intensities set to 0 before the square root")
        array = np.sqrt(np.clip(array, 0.0, None))
        notes.append(f"diffraction holds intensities (by {how}): converted to amplitudes, sqrt")
    return Reading(amplitudes=array, notes=tuple(notes), kind=kind, intensity_scale=scale)
