"""Phase D's spacing selection (study.md §5), on scan positions alone.

Direct selection keeps every position whose nearest neighbour is at least S away. When
that keeps less than the minimum acceptance rate, greedy selection visits positions in
(y, x) order and keeps one if it is at least S from every position kept so far. If even
greedy selection stays below the minimum, the view is rejected.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.spatial import cKDTree

MinAcceptance = float | Literal["geometry"]
GEOMETRY_CAP = 0.10
GEOMETRY_FLOOR = 0.0005
GEOMETRY_MARGIN = 0.8
# Distances that equal S up to float rounding (a raster built with step S) count as S.
_RELATIVE_TOLERANCE = 1e-9


@dataclass(frozen=True)
class Selection:
    """The outcome of spacing selection for one split of one view."""

    mask: np.ndarray  # bool (n,): positions kept (by the strategy used, or greedy's try)
    accepted: bool
    strategy: str | None  # "direct" or "greedy" when accepted
    direct_rate: float
    greedy_rate: float | None  # None when direct selection was enough
    acceptance_rate: float
    min_acceptance: float
    threshold_px: float
    reason: str | None

    @property
    def n_positions(self) -> int:
        return int(self.mask.shape[0])

    @property
    def n_accepted(self) -> int:
        return int(self.mask.sum())


def _points(xcoords: np.ndarray, ycoords: np.ndarray) -> np.ndarray:
    return np.column_stack([np.asarray(xcoords, float), np.asarray(ycoords, float)])


def nearest_neighbour_distances(xcoords: np.ndarray, ycoords: np.ndarray) -> np.ndarray:
    """Distance from each position to its nearest other position (inf when alone)."""
    points = _points(xcoords, ycoords)
    if len(points) < 2:
        return np.full(len(points), np.inf)
    distances, _ = cKDTree(points).query(points, k=2)
    return np.asarray(distances[:, 1], dtype=np.float64)


def select_direct(xcoords: np.ndarray, ycoords: np.ndarray, threshold: float) -> np.ndarray:
    """Mask of positions whose nearest neighbour is at least `threshold` away."""
    limit = threshold * (1 - _RELATIVE_TOLERANCE)
    return np.asarray(nearest_neighbour_distances(xcoords, ycoords) >= limit)


def select_greedy(xcoords: np.ndarray, ycoords: np.ndarray, threshold: float) -> np.ndarray:
    """Mask kept by visiting positions sorted by (y, x), each ≥ threshold from all kept."""
    points = _points(xcoords, ycoords)
    mask = np.zeros(len(points), dtype=bool)
    if threshold <= 0:
        mask[:] = True
        return mask
    limit_sq = (threshold * (1 - _RELATIVE_TOLERANCE)) ** 2
    # A grid with cells of side S: any kept point closer than S is in the 3×3 neighbourhood.
    cells = np.floor(points / threshold).astype(np.int64)
    grid: dict[tuple[int, int], list[int]] = {}
    for index in np.lexsort((points[:, 0], points[:, 1])):
        cx, cy = int(cells[index, 0]), int(cells[index, 1])
        near = [
            kept
            for dx in (-1, 0, 1)
            for dy in (-1, 0, 1)
            for kept in grid.get((cx + dx, cy + dy), ())
        ]
        if near and np.min(np.sum((points[near] - points[index]) ** 2, axis=1)) < limit_sq:
            continue
        mask[index] = True
        grid.setdefault((cx, cy), []).append(int(index))
    return mask


def geometry_bound(xcoords: np.ndarray, ycoords: np.ndarray, threshold: float) -> float:
    """min(bbox_area / (n · π (S/2)²), 0.10): the packing bound of study.md §5."""
    n = len(xcoords)
    if n == 0 or threshold <= 0:
        return GEOMETRY_CAP
    area = float(np.ptp(xcoords) * np.ptp(ycoords))
    return min(area / (n * math.pi * (threshold / 2) ** 2), GEOMETRY_CAP)


def minimum_acceptance(
    xcoords: np.ndarray, ycoords: np.ndarray, threshold: float, mode: MinAcceptance
) -> float:
    """The minimum rate: the fixed value, or max(0.0005, 0.8 · bound) in geometry mode."""
    if mode == "geometry":
        bound = geometry_bound(xcoords, ycoords, threshold)
        return max(GEOMETRY_FLOOR, GEOMETRY_MARGIN * bound)
    return float(mode)


def select_positions(
    xcoords: np.ndarray, ycoords: np.ndarray, threshold: float, min_acceptance: MinAcceptance
) -> Selection:
    """Direct selection, the greedy fallback, and the accept/reject decision."""
    n = len(xcoords)
    minimum = minimum_acceptance(xcoords, ycoords, threshold, min_acceptance)
    direct = select_direct(xcoords, ycoords, threshold)
    direct_rate = float(direct.mean()) if n else 0.0
    common = {"direct_rate": direct_rate, "min_acceptance": minimum, "threshold_px": threshold}
    if direct.any() and direct_rate >= minimum:
        return Selection(
            direct, True, "direct", greedy_rate=None, acceptance_rate=direct_rate,
            reason=None, **common,
        )  # fmt: skip
    greedy = select_greedy(xcoords, ycoords, threshold)
    greedy_rate = float(greedy.mean()) if n else 0.0
    if greedy.any() and greedy_rate >= minimum:
        return Selection(
            greedy, True, "greedy", greedy_rate=greedy_rate, acceptance_rate=greedy_rate,
            reason=None, **common,
        )  # fmt: skip
    reason = (
        f"acceptance rate {greedy_rate:.2%} (direct {direct_rate:.2%}, greedy "
        f"{greedy_rate:.2%}) below the minimum {minimum:.2%} at spacing threshold "
        f"{threshold:.1f} px ({int(greedy.sum())} of {n} positions kept)"
    )
    return Selection(
        greedy, False, None, greedy_rate=greedy_rate, acceptance_rate=greedy_rate,
        reason=reason, **common,
    )  # fmt: skip


def spacing_metrics(xcoords: np.ndarray, ycoords: np.ndarray) -> dict[str, float]:
    """min/max/mean/median nearest-neighbour spacing of kept positions (NaN if fewer than 2)."""
    distances = nearest_neighbour_distances(xcoords, ycoords)
    if len(distances) < 2:
        return {name: math.nan for name in ("min", "max", "mean", "median")}
    return {
        "min": float(distances.min()),
        "max": float(distances.max()),
        "mean": float(distances.mean()),
        "median": float(np.median(distances)),
    }
