"""How much the probe discs of a scan overlap, measured from the probe and the positions.

Phase D keeps positions by a spacing threshold S = (1 − f) · N, a fraction of the patch size,
not of the illuminated area; this module measures what that leaves of the discs' overlap.

The disc. The probe's intensity |P|² is taken about its intensity-weighted centroid; the
disc is the circle about that centroid holding DISC_ENERGY_FRACTION = 1 − e⁻² ≈ 86.5 % of the
total intensity (the D86 width: for a Gaussian beam, its 1/e² diameter). An energy radius is
used rather than an intensity threshold because a defocused probe is a ring with a dim
centre and fringes, which a threshold cuts into pieces. Every position's disc is this circle,
shifted to the position.

The numbers (fractions are of one disc's area, in [0, 1]):
- `probe_diameter_px`: the disc's diameter D in pixels;
- `median_spacing_px`: the median distance from a position to its nearest neighbour;
- `linear_overlap`: max(0, 1 − median spacing / D), the overlap as ptychography usually
  quotes it (the study's dense view aims at 0.7);
- `nearest_neighbour_overlap`: the mean over positions of the area a disc shares with its
  nearest neighbour's disc (analytic circle-circle intersection);
- `knn_overlap`: the mean over positions of the mean shared area with each of its
  `neighbor_count` nearest neighbours, or all others when there are fewer (PtychoPINN's
  image-based overlap, with the measured diameter in place of its nominal 0.6 · N);
- `covered_fraction`: the mean over positions of the part of its disc covered by at least
  one other position's disc, from the discs rasterised on one grid of
  COVERAGE_SAMPLES_ACROSS nodes per diameter (within 0.01 of the exact area, 0.003 on average).
A lone position overlaps nothing: its fractions are 0 and its spacing is null.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.spatial import cKDTree

from app.study.selection import nearest_neighbour_distances

DISC_ENERGY_FRACTION = 1.0 - math.exp(-2.0)
COVERAGE_SAMPLES_ACROSS = 48
SUBSTEPS = 8  # disc centres per grid step: a disc sits within 1/16 step of its position
DEFAULT_NEIGHBOR_COUNT = 7  # the study's K (app.study.design)
_DENSE_GRID_CELLS = 1 << 23  # above this many grid nodes, count coverage by sorting instead


def probe_disc_diameter(probe: np.ndarray) -> float:
    """Diameter of the circle about the centroid of |probe|² holding 1 − e⁻² of its energy."""
    intensity = np.abs(np.asarray(probe)) ** 2
    total = float(intensity.sum())
    if intensity.ndim != 2 or not math.isfinite(total) or total <= 0:
        raise ValueError("the probe must be a finite 2-D array with some intensity")
    rows, cols = np.indices(intensity.shape, dtype=np.float64)
    centre_y = float((intensity * rows).sum()) / total
    centre_x = float((intensity * cols).sum()) / total
    radii = np.hypot(rows - centre_y, cols - centre_x).ravel()
    order = np.argsort(radii, kind="stable")
    enclosed = np.cumsum(intensity.ravel()[order]) / total
    # The radius of the first pixel (nearest the centre first) that brings in the fraction.
    first = min(int(np.searchsorted(enclosed, DISC_ENERGY_FRACTION)), len(order) - 1)
    return max(2.0 * float(radii[order][first]), 1.0)  # a disc is at least a pixel wide


def disc_overlap_fraction(distance: np.ndarray | float, diameter: float) -> np.ndarray:
    """Area shared by two discs of `diameter` at centre `distance`, over one disc's area."""
    u = np.clip(np.asarray(distance, dtype=np.float64) / diameter, 0.0, 1.0)
    # Two circles of radius R at distance d = 2Ru share 2R²(acos u − u√(1 − u²)).
    return (2.0 / math.pi) * (np.arccos(u) - u * np.sqrt(1.0 - u * u))


def covered_fractions(points: np.ndarray, diameter: float) -> np.ndarray:
    """Per position: the part of its disc that at least one other position's disc covers.

    The discs are rasterised on one grid of COVERAGE_SAMPLES_ACROSS nodes per diameter; a node's
    count is the number of discs that cover it. Each disc is one of SUBSTEPS² precomputed
    stencils, the one whose centre lies nearest its position (at most 0.2 % of D away).
    """
    n = len(points)
    if n < 2:
        return np.zeros(n)
    step = diameter / COVERAGE_SAMPLES_ACROSS
    cells = (points - points.min(axis=0)) / step
    base = np.floor(cells).astype(np.intp)
    phase = np.minimum((cells - base) * SUBSTEPS, SUBSTEPS - 1).astype(np.intp)
    half = COVERAGE_SAMPLES_ACROSS // 2 + 2
    base += half
    width, height = (base.max(axis=0) + half + 1).tolist()
    rows, cols, inside = _stencils(half)
    which = phase[:, 1] * SUBSTEPS + phase[:, 0]
    spare = width * height  # padding of the shorter stencils lands on this extra node
    nodes = np.where(
        inside[which],
        (base[:, 1, None] + rows[which]) * width + base[:, 0, None] + cols[which],
        spare,
    )
    if spare < _DENSE_GRID_CELLS:
        discs_at = np.bincount(nodes.ravel(), minlength=spare + 1)[nodes]
    else:
        _, inverse, counts = np.unique(nodes, return_inverse=True, return_counts=True)
        discs_at = counts[inverse.reshape(nodes.shape)]
    covered = ((discs_at >= 2) & inside[which]).sum(axis=1)
    return np.asarray(covered / inside[which].sum(axis=1), dtype=np.float64)


def _stencils(half: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Node offsets (rows, columns) inside a disc centred at each sub-step of a cell, padded."""
    radius = COVERAGE_SAMPLES_ACROSS / 2  # in grid steps
    grid = np.arange(-half, half + 1)
    centres = (np.arange(SUBSTEPS) + 0.5) / SUBSTEPS
    stencils = []
    for cy in centres:
        for cx in centres:
            r, c = np.nonzero((grid[:, None] - cy) ** 2 + (grid[None, :] - cx) ** 2 < radius**2)
            stencils.append((grid[r], grid[c]))
    size = max(len(r) for r, _ in stencils)
    rows = np.zeros((len(stencils), size), dtype=np.intp)
    cols = np.zeros_like(rows)
    inside = np.zeros(rows.shape, dtype=bool)
    for index, (r, c) in enumerate(stencils):
        rows[index, : len(r)], cols[index, : len(c)], inside[index, : len(r)] = r, c, True
    return rows, cols, inside


def measure_probe_overlap(
    xcoords: np.ndarray,
    ycoords: np.ndarray,
    probe: np.ndarray,
    *,
    neighbor_count: int = DEFAULT_NEIGHBOR_COUNT,
) -> dict[str, Any] | None:
    """The numbers of the module docstring, rounded for JSON; None without positions or disc."""
    points = np.column_stack([np.asarray(xcoords, float), np.asarray(ycoords, float)])
    n = len(points)
    if n == 0 or not np.isfinite(points).all():
        return None
    try:
        diameter = probe_disc_diameter(probe)
    except ValueError:  # a dark or broken probe has no disc to measure
        return None
    median_spacing = linear = None
    knn = nn = 0.0
    k = min(neighbor_count, n - 1)
    if k > 0:
        nearest = nearest_neighbour_distances(points[:, 0], points[:, 1])
        distances, _ = cKDTree(points).query(points, k=k + 1)
        knn = float(disc_overlap_fraction(distances[:, 1:], diameter).mean())
        nn = float(disc_overlap_fraction(nearest, diameter).mean())
        spacing = float(np.median(nearest))
        median_spacing, linear = spacing, max(0.0, 1.0 - spacing / diameter)
    return {
        "n_positions": n,
        "probe_diameter_px": round(diameter, 2),
        "median_spacing_px": None if median_spacing is None else round(median_spacing, 2),
        "linear_overlap": None if linear is None else round(linear, 4),
        "nearest_neighbour_overlap": round(nn, 4),
        "knn_overlap": round(knn, 4),
        "neighbor_count": neighbor_count,
        "covered_fraction": round(float(covered_fractions(points, diameter).mean()), 4),
    }


def definition(neighbor_count: int = DEFAULT_NEIGHBOR_COUNT) -> dict[str, Any]:
    """How the numbers were measured, for the files that record them."""
    return {
        "disc": "circle about the centroid of |probeGuess|^2 holding 1 - e^-2 of its energy",
        "disc_energy_fraction": round(DISC_ENERGY_FRACTION, 4),
        "neighbor_count": neighbor_count,
        "coverage_samples_across": COVERAGE_SAMPLES_ACROSS,
    }
