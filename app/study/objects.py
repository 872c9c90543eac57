"""A procedural stand-in for the study's fly-wing object (study.md §4.1).

The object is a thin specimen: a thickness map made of cell-like regions with sharp walls,
small dense inclusions and texture at several scales. Amplitude (transmission) falls with
thickness into (0, 1]; the phase follows thickness plus a smooth field of its own, so the
two are correlated without being copies of each other. Both are blurred lightly (σ = 0.5 px)
as a real reconstruction would be.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

CELL_PITCH_PX = 36.0  # typical distance between cell centres
TEXTURE_SIGMAS_PX = (1.0, 3.0, 8.0, 24.0)
TEXTURE_WEIGHTS = (0.15, 0.25, 0.35, 0.25)
MIN_AMPLITUDE = 0.25
PHASE_RANGE_RAD = 1.6
BLUR_SIGMA_PX = 0.5


def make_object(size: int, rng: np.random.Generator) -> np.ndarray:
    """Complex (size, size) object: amplitude in (0, 1], correlated phase of ~1.6 rad range."""
    if size < 8:
        raise ValueError(f"object size must be at least 8 px, got {size}")
    labels = _cell_labels(size, rng)
    thickness = (
        0.35 * _texture(size, rng)
        + 0.25 * _cells(labels, rng)
        + 0.25 * _walls(labels)
        + 0.15 * _inclusions(size, rng)
    )
    thickness = _normalise(thickness)
    phase_field = _normalise(0.7 * thickness + 0.3 * _texture(size, rng))
    amplitude = 1.0 - (1.0 - MIN_AMPLITUDE) * thickness
    phase = PHASE_RANGE_RAD * (phase_field - 0.5)
    amplitude = np.clip(ndimage.gaussian_filter(amplitude, BLUR_SIGMA_PX), MIN_AMPLITUDE, 1.0)
    phase = ndimage.gaussian_filter(phase, BLUR_SIGMA_PX)
    field: np.ndarray = amplitude * np.exp(1j * phase)
    return field


def _normalise(image: np.ndarray) -> np.ndarray:
    low, high = float(image.min()), float(image.max())
    if high - low <= 0:
        return np.zeros_like(image)
    return (image - low) / (high - low)


def _texture(size: int, rng: np.random.Generator) -> np.ndarray:
    """Smooth random texture summed over several length scales."""
    total = np.zeros((size, size))
    for sigma, weight in zip(TEXTURE_SIGMAS_PX, TEXTURE_WEIGHTS, strict=True):
        field = ndimage.gaussian_filter(rng.standard_normal((size, size)), sigma, mode="wrap")
        total += weight * field / (field.std() + 1e-12)
    return _normalise(total)


def _cell_labels(size: int, rng: np.random.Generator) -> np.ndarray:
    n_cells = max(4, int((size / CELL_PITCH_PX) ** 2))
    seeds = rng.uniform(0, size, (n_cells, 2))
    grid = np.indices((size, size)).reshape(2, -1).T
    _, labels = cKDTree(seeds).query(grid)
    return np.asarray(labels, dtype=np.int64).reshape(size, size)


def _cells(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Piecewise-constant cell thickness: sharp steps between neighbouring cells."""
    levels = rng.uniform(0.0, 1.0, int(labels.max()) + 1)
    return np.asarray(levels[labels])


def _walls(labels: np.ndarray) -> np.ndarray:
    """Thin dense walls (2-3 px) along the cell boundaries."""
    edge = np.zeros(labels.shape, dtype=bool)
    edge[:-1, :] |= labels[:-1, :] != labels[1:, :]
    edge[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    return np.asarray(ndimage.binary_dilation(edge), dtype=np.float64)


def _inclusions(size: int, rng: np.random.Generator) -> np.ndarray:
    """Small sharp-edged elliptical blobs (bristles, granules)."""
    count = max(1, size * size // 2500)
    yy, xx = np.mgrid[0:size, 0:size]
    image = np.zeros((size, size))
    centres = rng.uniform(0, size, (count, 2))
    radii = rng.uniform(1.5, 6.0, (count, 2))
    angles = rng.uniform(0, np.pi, count)
    strengths = rng.uniform(0.5, 1.0, count)
    for (cy, cx), (ry, rx), angle, strength in zip(centres, radii, angles, strengths, strict=True):
        # Only the blob's bounding box is evaluated, so the cost stays small.
        r = int(np.ceil(max(ry, rx))) + 1
        y0, y1 = max(0, int(cy) - r), min(size, int(cy) + r + 1)
        x0, x1 = max(0, int(cx) - r), min(size, int(cx) + r + 1)
        dy, dx = yy[y0:y1, x0:x1] - cy, xx[y0:y1, x0:x1] - cx
        u = dx * np.cos(angle) + dy * np.sin(angle)
        v = -dx * np.sin(angle) + dy * np.cos(angle)
        inside = (u / rx) ** 2 + (v / ry) ** 2 <= 1.0
        image[y0:y1, x0:x1] = np.maximum(image[y0:y1, x0:x1], strength * inside)
    return image
