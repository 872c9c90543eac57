"""The forward model (study.md §4.4): object patch × probe → far-field intensity.

Geometry, shared by simulation and training: a scan position (x, y) is the centre of the
N×N patch in object pixel coordinates, and the patch's pixel (i, j) samples the object at
(y − N/2 + i, x − N/2 + j). Sub-pixel positions are sampled bilinearly: the result equals
`scipy.ndimage.map_coordinates(obj, [rows, cols], order=1)` at those coordinates. Because
every pixel of a patch shares one fractional offset, the interpolation is done per patch
as two weighted sums of an integer (N+1)×(N+1) window, which vectorises over patterns.

Far field: unitary 2-D FFT (norm="ortho", so Σ|F|² = Σ|probe·patch|²), zero frequency
shifted to the centre (fftshift), intensity |F|².
"""

from __future__ import annotations

import numpy as np
import scipy.fft
from numpy.lib.stride_tricks import sliding_window_view

_EDGE_TOLERANCE_PX = 1e-6  # positions this close outside the scan bounds are clamped


def patch_corners(
    xcoords: np.ndarray, ycoords: np.ndarray, patch_size: int, object_shape: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Integer top-left window corners (row, col) and fractional offsets (fy, fx) per patch."""
    height, width = object_shape[0], object_shape[1]
    if height <= patch_size or width <= patch_size:
        raise ValueError(f"object {object_shape} must be larger than the patch size {patch_size}")
    tops = np.asarray(ycoords, dtype=np.float64) - patch_size / 2
    lefts = np.asarray(xcoords, dtype=np.float64) - patch_size / 2
    rows = np.clip(np.floor(tops), 0, height - patch_size - 1).astype(np.intp)
    cols = np.clip(np.floor(lefts), 0, width - patch_size - 1).astype(np.intp)
    fy, fx = tops - rows, lefts - cols
    outside = (fy < -_EDGE_TOLERANCE_PX) | (fy > 1 + _EDGE_TOLERANCE_PX)
    outside |= (fx < -_EDGE_TOLERANCE_PX) | (fx > 1 + _EDGE_TOLERANCE_PX)
    if np.any(outside):
        first = int(np.flatnonzero(outside)[0])
        raise ValueError(
            f"scan position {first} (x={xcoords[first]}, y={ycoords[first]}) puts its "
            f"{patch_size}×{patch_size} patch outside the {height}×{width} object"
        )
    return rows, cols, np.clip(fy, 0.0, 1.0), np.clip(fx, 0.0, 1.0)


def bilinear_patches(
    obj: np.ndarray, xcoords: np.ndarray, ycoords: np.ndarray, patch_size: int
) -> np.ndarray:
    """Patches of `obj` (its complex dtype kept) at sub-pixel centres, shape (n, N, N)."""
    rows, cols, fy, fx = patch_corners(xcoords, ycoords, patch_size, obj.shape)
    windows = sliding_window_view(obj, (patch_size + 1, patch_size + 1))[rows, cols]
    real = np.float32 if obj.dtype == np.complex64 else np.float64
    # Interleaved (re, im) pairs: a shift of one complex column is a shift of two reals, and
    # real weights multiply reals without complex arithmetic.
    flat = windows.view(real)
    wx = fx.astype(real)[:, None, None]
    wy = fy.astype(real)[:, None, None]
    left = flat[:, :, : 2 * patch_size]
    across = flat[:, :, 2:] - left
    across *= wx
    across += left
    top = across[:, :-1]
    down = across[:, 1:] - top
    down *= wy
    down += top
    patches: np.ndarray = down.view(obj.dtype)
    return patches


def extract_patches(
    obj: np.ndarray,
    xcoords: np.ndarray,
    ycoords: np.ndarray,
    N: int,  # noqa: N803 -- the physics' own name for the patch size
) -> np.ndarray:
    """Complex128 (n, N, N) object patches centred at (xcoords, ycoords), bilinear sub-pixel."""
    obj128 = np.ascontiguousarray(obj, dtype=np.complex128)
    return bilinear_patches(obj128, np.atleast_1d(xcoords), np.atleast_1d(ycoords), N)


def forward_intensity(patches: np.ndarray, probe: np.ndarray) -> np.ndarray:
    """Noiseless far-field intensity |fftshift(fft2(probe·patch, norm="ortho"))|², float64."""
    exit_waves = np.asarray(patches, dtype=np.complex128) * np.asarray(probe, dtype=np.complex128)
    far_field = scipy.fft.fft2(exit_waves, axes=(-2, -1), norm="ortho", workers=-1)
    far_field = np.fft.fftshift(far_field, axes=(-2, -1))
    return np.asarray(far_field.real**2 + far_field.imag**2, dtype=np.float64)


def centring_probe(probe: np.ndarray) -> np.ndarray:
    """probe·(−1)^(i+j) in complex64: its plain FFT equals the fftshifted FFT of the probe.

    For even N, multiplying by (−1)^(i+j) moves the spectrum by (N/2, N/2), which is exactly
    fftshift, so the fast path needs no extra copy for the shift.
    """
    size = probe.shape[0]
    if size % 2:
        raise ValueError(f"patch size must be even, got {size}")
    signs = 1 - 2 * (np.add.outer(np.arange(size), np.arange(size)) % 2)
    return np.asarray(probe * signs, dtype=np.complex64)


def intensity_into(
    out: np.ndarray,
    obj64: np.ndarray,
    centred_probe: np.ndarray,
    xcoords: np.ndarray,
    ycoords: np.ndarray,
) -> np.ndarray:
    """Fast complex64 forward model into `out` (float32 (n, N, N)); returns Σ intensity per patch.

    Single-threaded per call, so callers run chunks in parallel threads.
    """
    patches = bilinear_patches(obj64, xcoords, ycoords, centred_probe.shape[0])
    patches *= centred_probe
    far_field = scipy.fft.fft2(patches, axes=(-2, -1), norm="ortho", overwrite_x=True, workers=1)
    np.multiply(far_field.real, far_field.real, out=out)
    out += far_field.imag * far_field.imag
    return np.asarray(out.sum(axis=(1, 2), dtype=np.float64))
