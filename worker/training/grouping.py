"""Samples for the network: single patterns (gridsize 1) or groups of 4 neighbours (gridsize 2)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree


@dataclass(frozen=True)
class Groups:
    """Which patterns form each sample, and where they sit relative to the sample's centre."""

    indices: np.ndarray  # int64 (S, C): pattern index of each member
    offsets: np.ndarray  # float32 (S, C, 2): member position (x, y) minus the group centre

    @property
    def size(self) -> int:
        return int(self.indices.shape[0])


def single_patterns(n: int) -> Groups:
    """Gridsize 1: one sample per pattern, at offset zero."""
    return Groups(
        indices=np.arange(n, dtype=np.int64)[:, None],
        offsets=np.zeros((n, 1, 2), dtype=np.float32),
    )


def neighbour_groups(
    xy: np.ndarray, seeds: np.ndarray, *, members: int, neighbor_count: int, seed: int
) -> Groups:
    """Group each seed position with `members - 1` of its K nearest neighbours, chosen by seed.

    The seed always belongs to its group; the others are drawn without replacement from its
    K - 1 nearest neighbours (K = neighbor_count, capped by the number of positions), so
    repeated seeds still give different groups. Members are ordered as a 2×2 grid: the two
    upper ones (smaller y) first, each pair left to right.
    """
    n = xy.shape[0]
    if n < members:
        raise ValueError(f"{members} patterns are needed to form a group, got {n}")
    k = min(max(neighbor_count, members), n)
    _, nearest = cKDTree(xy).query(xy[seeds], k=k)
    nearest = np.asarray(nearest, dtype=np.int64).reshape(len(seeds), k)
    others = _without_seed(nearest, seeds)
    rng = np.random.default_rng(seed)
    picks = np.argsort(rng.random(others.shape), axis=1)[:, : members - 1]
    chosen = np.concatenate([seeds[:, None], np.take_along_axis(others, picks, axis=1)], axis=1)
    chosen = _grid_order(xy, chosen)
    positions = xy[chosen]
    offsets = positions - positions.mean(axis=1, keepdims=True)
    return Groups(indices=chosen, offsets=offsets.astype(np.float32))


def training_groups(
    xy: np.ndarray, *, gridsize: int, n_groups: int, neighbor_count: int, seed: int
) -> Groups:
    """Training samples: n_groups patterns (gridsize 1) or n_groups seeded neighbour groups.

    At gridsize 1 every pattern is used when n_groups >= n, else a seeded subset of n_groups
    (in file order), as the study's n_groups caps the training samples at either gridsize.
    """
    rng = np.random.default_rng(seed)
    n = xy.shape[0]
    if gridsize == 1:
        if n_groups >= n:
            return single_patterns(n)
        chosen = np.sort(rng.choice(n, size=n_groups, replace=False))
        return Groups(indices=chosen[:, None], offsets=np.zeros((n_groups, 1, 2), np.float32))
    seeds = rng.choice(n, size=n_groups, replace=n_groups > n)
    return neighbour_groups(
        xy, seeds, members=gridsize**2, neighbor_count=neighbor_count, seed=seed + 1
    )


def covering_groups(xy: np.ndarray, *, gridsize: int, neighbor_count: int, seed: int) -> Groups:
    """Evaluation samples: one sample seeded at every pattern, so each position is predicted."""
    if gridsize == 1:
        return single_patterns(xy.shape[0])
    seeds = np.arange(xy.shape[0], dtype=np.int64)
    return neighbour_groups(
        xy, seeds, members=gridsize**2, neighbor_count=neighbor_count, seed=seed
    )


def _without_seed(nearest: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """Drop the seed from its neighbour list (it is usually, not always, the first entry)."""
    is_seed = nearest == seeds[:, None]
    first = np.argmax(is_seed, axis=1)
    # A duplicate position can push the seed out of the list: drop the farthest instead.
    first[~is_seed.any(axis=1)] = nearest.shape[1] - 1
    keep = np.ones_like(nearest, dtype=bool)
    keep[np.arange(len(seeds)), first] = False
    members: np.ndarray = nearest[keep]
    return members.reshape(len(seeds), nearest.shape[1] - 1)


def _grid_order(xy: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    """Reorder each group of 4 as upper-left, upper-right, lower-left, lower-right."""
    if chosen.shape[1] != 4:
        return chosen
    by_y = np.take_along_axis(chosen, np.argsort(xy[chosen, 1], axis=1, kind="stable"), axis=1)
    upper, lower = by_y[:, :2], by_y[:, 2:]
    upper = np.take_along_axis(upper, np.argsort(xy[upper, 0], axis=1, kind="stable"), axis=1)
    lower = np.take_along_axis(lower, np.argsort(xy[lower, 0], axis=1, kind="stable"), axis=1)
    return np.concatenate([upper, lower], axis=1)
