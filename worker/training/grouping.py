"""Samples for the network: single patterns (gridsize 1) or groups of 4 neighbours (gridsize 2).

Gridsize-2 groups follow PtychoPINN's "sample then group" rule (ptycho/raw_data.py,
`generate_grouped_data` → `_generate_groups_efficiently`): draw the seed positions without
replacement, at most one per position; take each seed's K nearest neighbours, the seed
itself left out (a KD-tree query of K + 1 minus its first hit); choose the C = gridsize²
members uniformly among those K, without replacement. More groups than positions come only
on request (PtychoPINN's `enable_oversampling`), never by silently repeating seeds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

# Redraws that make repeated seeds give different member sets; with K = 7 and C = 4 a seed
# has 35 sets, so a few rounds clear every clash but the unavoidable ones.
_REDRAW_ROUNDS = 16


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
    xy: np.ndarray,
    seeds: np.ndarray,
    *,
    members: int,
    neighbor_count: int,
    seed: int,
    include_seed: bool = False,
) -> Groups:
    """One group of `members` patterns per entry of `seeds`, drawn among its K nearest.

    The candidates are the seed's K nearest other positions (K = neighbor_count, at most
    n - 1). As in PtychoPINN, the members are `members` distinct candidates drawn uniformly,
    so the seed itself need not be one; the seed joins the candidates only when fewer than
    `members` exist. With `include_seed` the seed is always a member and the other
    `members - 1` are drawn among the candidates (what evaluation needs: every position is
    predicted). A seed listed several times gets a different member set each time while its
    candidates allow. Members are ordered as a 2×2 grid: the two upper ones (smaller y)
    first, each pair left to right; offsets are positions minus the members' mean.
    """
    n = xy.shape[0]
    seeds = np.asarray(seeds, dtype=np.int64)
    if n < members:
        raise ValueError(f"{members} patterns are needed to form a group, got {n}")
    if neighbor_count < members:
        raise ValueError(f"neighbor_count {neighbor_count} must be >= {members}, the group size")
    k = min(neighbor_count + 1, n)
    _, nearest = cKDTree(xy).query(xy[seeds], k=k)
    candidates = _without_seed(np.asarray(nearest, dtype=np.int64).reshape(len(seeds), k), seeds)
    need = members - 1 if include_seed else members
    if candidates.shape[1] < need:
        candidates = np.concatenate([seeds[:, None], candidates], axis=1)
    drawn = _distinct_draws(candidates, seeds, need, np.random.default_rng(seed))
    chosen = np.concatenate([seeds[:, None], drawn], axis=1) if include_seed else drawn
    chosen = _grid_order(xy, chosen)
    positions = xy[chosen]
    offsets = positions - positions.mean(axis=1, keepdims=True)
    return Groups(indices=chosen, offsets=offsets.astype(np.float32))


def training_groups(
    xy: np.ndarray,
    *,
    gridsize: int,
    n_groups: int,
    neighbor_count: int,
    seed: int,
    allow_oversample: bool = False,
) -> Groups:
    """Training samples: up to n_groups patterns (gridsize 1) or neighbour groups (gridsize 2).

    The number of samples is capped at the number of positions n. At gridsize 1 every
    pattern is used when n_groups >= n, else a seeded subset of n_groups (in file order). At
    gridsize 2, min(n_groups, n) seeds are drawn without replacement (all positions when
    n_groups >= n) and each seeds one group (`neighbour_groups`). `allow_oversample=True`
    lifts the cap at gridsize 2 only: exactly n_groups groups, every position seeding
    ⌊n_groups / n⌋ or one more of them, each repeat with another member set where its K
    neighbours allow (PtychoPINN's K-choose-C oversampling, which it also makes opt-in).
    """
    rng = np.random.default_rng(seed)
    n = xy.shape[0]
    if gridsize == 1:
        if n_groups >= n:
            return single_patterns(n)
        chosen = np.sort(rng.choice(n, size=n_groups, replace=False))
        return Groups(indices=chosen[:, None], offsets=np.zeros((n_groups, 1, 2), np.float32))
    if n_groups < n:
        seeds = rng.choice(n, size=n_groups, replace=False)
    elif n_groups == n or not allow_oversample:
        seeds = np.arange(n, dtype=np.int64)
    else:
        rounds, rest = divmod(n_groups, n)
        seeds = np.concatenate([np.tile(np.arange(n), rounds), rng.choice(n, rest, replace=False)])
    return neighbour_groups(
        xy, seeds, members=gridsize**2, neighbor_count=neighbor_count, seed=seed + 1
    )


def covering_groups(xy: np.ndarray, *, gridsize: int, neighbor_count: int, seed: int) -> Groups:
    """Evaluation samples: one group per pattern, holding it, so each position is predicted."""
    if gridsize == 1:
        return single_patterns(xy.shape[0])
    seeds = np.arange(xy.shape[0], dtype=np.int64)
    return neighbour_groups(
        xy,
        seeds,
        members=gridsize**2,
        neighbor_count=neighbor_count,
        seed=seed,
        include_seed=True,
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


def _distinct_draws(
    candidates: np.ndarray, seeds: np.ndarray, need: int, rng: np.random.Generator
) -> np.ndarray:
    """`need` distinct candidates per row, uniformly; rows of one seed differ where they can."""
    drawn = _draw(candidates, need, rng)
    for _ in range(_REDRAW_ROUNDS):
        again = _repeats(seeds, drawn)
        if not again.any():
            break
        drawn[again] = _draw(candidates[again], need, rng)
    return drawn


def _draw(candidates: np.ndarray, need: int, rng: np.random.Generator) -> np.ndarray:
    picks = np.argsort(rng.random(candidates.shape), axis=1)[:, :need]
    drawn: np.ndarray = np.take_along_axis(candidates, picks, axis=1)
    return drawn


def _repeats(seeds: np.ndarray, drawn: np.ndarray) -> np.ndarray:
    """Rows whose seed and member set already appeared in an earlier row."""
    keys = np.concatenate([seeds[:, None], np.sort(drawn, axis=1)], axis=1)
    _, first = np.unique(keys, axis=0, return_index=True)
    again = np.ones(len(keys), dtype=bool)
    again[first] = False
    return again


def _grid_order(xy: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    """Reorder each group of 4 as upper-left, upper-right, lower-left, lower-right."""
    if chosen.shape[1] != 4:
        return chosen
    by_y = np.take_along_axis(chosen, np.argsort(xy[chosen, 1], axis=1, kind="stable"), axis=1)
    upper, lower = by_y[:, :2], by_y[:, 2:]
    upper = np.take_along_axis(upper, np.argsort(xy[upper, 0], axis=1, kind="stable"), axis=1)
    lower = np.take_along_axis(lower, np.argsort(xy[lower, 0], axis=1, kind="stable"), axis=1)
    return np.concatenate([upper, lower], axis=1)
