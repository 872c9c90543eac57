"""Scan positions (study.md §4.3) and the top/bottom split (study.md §2).

A position (x, y) is the centre of its N×N patch in object pixels, so every scan keeps
positions inside [N/2, size − N/2]² and each patch lies wholly on the object.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

ScanKind = Literal["random", "raster", "jittered"]
SCAN_KINDS: tuple[ScanKind, ...] = ("random", "raster", "jittered")
JITTER_FRACTION = 0.25  # jittered raster: uniform offsets up to ±0.25 of the raster step


def scan_bounds(object_size: int, patch_size: int) -> tuple[float, float]:
    """The interval [N/2, size − N/2] every coordinate of a scan lies in."""
    low, high = patch_size / 2, object_size - patch_size / 2
    if high <= low:
        raise ValueError(f"object size {object_size} must exceed the patch size {patch_size}")
    return low, high


def make_scan(
    kind: str, n_positions: int, object_size: int, patch_size: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Scan positions (xcoords, ycoords), float64 arrays of length n_positions."""
    if n_positions < 2:
        raise ValueError(f"a scan needs at least 2 positions, got {n_positions}")
    low, high = scan_bounds(object_size, patch_size)
    if kind == "random":
        x = rng.uniform(low, high, n_positions)
        y = rng.uniform(low, high, n_positions)
        return x, y
    if kind not in SCAN_KINDS:
        raise ValueError(f"unknown scan kind {kind!r}; expected one of {', '.join(SCAN_KINDS)}")
    x, y, step = raster(n_positions, low, high)
    if kind == "jittered":
        x = np.clip(x + rng.uniform(-1, 1, n_positions) * JITTER_FRACTION * step, low, high)
        y = np.clip(y + rng.uniform(-1, 1, n_positions) * JITTER_FRACTION * step, low, high)
    return x, y


def raster(n_positions: int, low: float, high: float) -> tuple[np.ndarray, np.ndarray, float]:
    """Row-major square-grid raster over [low, high]², n positions (the last row may be short)."""
    columns = math.ceil(math.sqrt(n_positions))
    rows = math.ceil(n_positions / columns)
    step = (high - low) / max(columns - 1, 1)
    index = np.arange(n_positions)
    x = low + (index % columns) * step
    y = low + (index // columns) * step
    # Centre the rows vertically when the grid does not fill the square.
    y += ((high - low) - (rows - 1) * step) / 2
    return x.astype(np.float64), y.astype(np.float64), step


def split_midpoint(ycoords: np.ndarray) -> float:
    """The y midpoint ymin + 0.5·(ymax − ymin) that separates train (above) from test."""
    return float(ycoords.min() + 0.5 * (ycoords.max() - ycoords.min()))


def train_mask(ycoords: np.ndarray) -> np.ndarray:
    """True for train positions: y strictly below the midpoint; the rest are test."""
    return np.asarray(ycoords < split_midpoint(ycoords))
