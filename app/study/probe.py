"""The illumination (study.md §4.2): a focused X-ray probe, or one read from a file.

The procedural probe is the far field of a circular pupil (a zone-plate-like aperture)
with defocus, astigmatism and coma. Defocus spreads it to a disc of about 0.5 N with
Airy-like fringes and a curved phase; coma makes it lose its centre of symmetry, so a
reconstruction cannot trade the object for its conjugate twin.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from app.study.contract import read_square_complex

PUPIL_RADIUS_FRACTION = 1.0 / 8.0  # pupil radius in frequency bins, as a fraction of N
DEFOCUS_SPREAD_FRACTION = 0.25  # geometric half-width of the defocused spot, fraction of N
ASTIGMATISM_RAD = 1.0
COMA_RAD = 0.8


def make_probe(size: int) -> np.ndarray:
    """Complex (size, size) probe centred at pixel (size/2, size/2), peak amplitude 1."""
    if size < 16 or size % 2:
        raise ValueError(f"probe size must be an even number >= 16, got {size}")
    radius = PUPIL_RADIUS_FRACTION * size
    ky, kx = np.meshgrid(np.fft.fftfreq(size) * size, np.fft.fftfreq(size) * size, indexing="ij")
    rho = np.hypot(kx, ky) / radius
    theta = np.arctan2(ky, kx)
    # A quadratic pupil phase a·ρ² moves a ray at the pupil edge by N·a/(π·radius) pixels.
    defocus = np.pi * DEFOCUS_SPREAD_FRACTION * radius
    phase = (
        defocus * rho**2
        + ASTIGMATISM_RAD * rho**2 * np.cos(2 * theta)
        + COMA_RAD * (3 * rho**3 - 2 * rho) * np.cos(theta - 0.6)
    )
    # A one-bin soft edge keeps the rings without ringing from a pixel-sharp cut.
    pupil = np.clip(radius + 0.5 - np.hypot(kx, ky), 0.0, 1.0)
    field = np.fft.fftshift(np.fft.ifft2(pupil * np.exp(1j * phase)))
    return np.asarray(field / np.abs(field).max(), dtype=np.complex128)


def load_probe(path: str | Path, size: int) -> np.ndarray:
    """The `probeGuess` of an NPZ file, checked to be complex (size, size)."""
    probe = read_square_complex(
        path,
        "probeGuess",
        size,
        what="probe",
        missing="a complex (N, N) probe",
        expected=f"complex array of shape (N, N) with N = {size}",
    )
    return np.asarray(probe, dtype=np.complex128)
