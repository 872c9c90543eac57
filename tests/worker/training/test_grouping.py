"""Gridsize-2 groups: deterministic, local, centred, in 2×2 order, as PtychoPINN draws them."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import cKDTree

from worker.training.grouping import covering_groups, neighbour_groups, training_groups


def _positions(n: int = 60) -> np.ndarray:
    return np.random.default_rng(0).uniform(0, 300, (n, 2))


def test_same_seed_same_groups_and_other_seed_other_groups() -> None:
    xy = _positions()
    first = training_groups(xy, gridsize=2, n_groups=40, neighbor_count=7, seed=123)
    again = training_groups(xy, gridsize=2, n_groups=40, neighbor_count=7, seed=123)
    other = training_groups(xy, gridsize=2, n_groups=40, neighbor_count=7, seed=124)
    np.testing.assert_array_equal(first.indices, again.indices)
    np.testing.assert_array_equal(first.offsets, again.offsets)
    assert not np.array_equal(first.indices, other.indices)


def test_members_are_among_some_seeds_k_nearest_and_offsets_are_centred() -> None:
    xy = _positions()
    k = 7
    groups = training_groups(xy, gridsize=2, n_groups=50, neighbor_count=k, seed=5)
    assert groups.indices.shape == (50, 4)
    assert groups.offsets.shape == (50, 4, 2)
    _, nearest = cKDTree(xy).query(xy, k=k + 1)
    # The seed is left out of its own candidates: each group lies within some position's
    # K nearest others.
    candidates = [set(row[1:]) for row in nearest]
    for members in groups.indices:
        assert len(set(members)) == 4
        assert any(set(members) <= pool for pool in candidates)
    np.testing.assert_allclose(groups.offsets.mean(axis=1), 0.0, atol=1e-4)
    centre = xy[groups.indices].mean(axis=1, keepdims=True)
    np.testing.assert_allclose(groups.offsets, xy[groups.indices] - centre, atol=1e-4)


def test_members_are_in_two_by_two_order() -> None:
    groups = training_groups(_positions(), gridsize=2, n_groups=50, neighbor_count=7, seed=9)
    x, y = groups.offsets[..., 0], groups.offsets[..., 1]
    assert np.all(np.maximum(y[:, 0], y[:, 1]) <= np.minimum(y[:, 2], y[:, 3]))
    assert np.all(x[:, 0] <= x[:, 1])
    assert np.all(x[:, 2] <= x[:, 3])


def test_groups_are_capped_at_the_number_of_positions_unless_oversampling_is_asked() -> None:
    xy = _positions(20)
    capped = training_groups(xy, gridsize=2, n_groups=64, neighbor_count=7, seed=1)
    assert capped.size == 20
    more = training_groups(
        xy, gridsize=2, n_groups=64, neighbor_count=7, seed=1, allow_oversample=True
    )
    assert more.size == 64
    # Repeats of one seed draw other member sets; two seeds may still draw the same set.
    assert len({tuple(sorted(m)) for m in more.indices}) >= 58


def test_gridsize1_and_covering_groups() -> None:
    xy = _positions(30)
    single = training_groups(xy, gridsize=1, n_groups=512, neighbor_count=7, seed=1)
    np.testing.assert_array_equal(single.indices[:, 0], np.arange(30))
    assert not single.offsets.any()
    subset = training_groups(xy, gridsize=1, n_groups=10, neighbor_count=7, seed=1)
    assert subset.size == 10
    assert len(set(subset.indices[:, 0])) == 10
    np.testing.assert_array_equal(np.sort(subset.indices[:, 0]), subset.indices[:, 0])
    cover = covering_groups(xy, gridsize=2, neighbor_count=7, seed=1)
    assert cover.size == 30
    assert all(seed in members for seed, members in enumerate(cover.indices))


def _grid(side: int = 5, step: float = 10.0) -> np.ndarray:
    """A side × side raster: the neighbours of every point are known by hand."""
    index = np.arange(side * side)
    return np.stack([(index % side) * step, (index // side) * step], axis=1).astype(float)


def test_hand_built_grid_groups_come_from_the_seeds_k_nearest() -> None:
    xy = _grid()
    centre = 12  # (20, 20): its 4 nearest others are the edge neighbours, at 10 px
    edge = {7, 11, 13, 17}
    groups = neighbour_groups(
        xy, np.full(4, centre), members=4, neighbor_count=4, seed=0, include_seed=False
    )
    # K = 4 leaves exactly four candidates: every group is that set, the seed not in it.
    assert all(set(members) == edge for members in groups.indices)
    # The 2×2 order of a diamond: the two smallest y (7 at y 10, then 11 of the tied middle
    # pair) form the upper row, 13 and 17 the lower; each row runs left to right.
    np.testing.assert_array_equal(groups.indices[0], [11, 7, 17, 13])
    covering = neighbour_groups(
        xy, np.array([centre]), members=4, neighbor_count=4, seed=0, include_seed=True
    )
    assert centre in covering.indices[0]
    assert set(covering.indices[0]) - {centre} <= edge


def test_groups_on_a_grid_are_within_k_have_no_duplicates_and_are_capped() -> None:
    xy = _grid()
    k = 8  # on the raster, the 8 nearest others are the ring of edge and corner neighbours
    groups = training_groups(xy, gridsize=2, n_groups=500, neighbor_count=k, seed=3)
    assert groups.size == len(xy)
    ring = {
        i: {j for j in range(len(xy)) if j != i and np.abs(xy[j] - xy[i]).max() <= 10 + 1e-9}
        for i in range(len(xy))
    }
    for members in groups.indices:
        assert len(set(members)) == 4
        assert any(set(members) <= _within_k(xy, i, k) for i in range(len(xy)))
    # An interior point's K nearest are exactly its ring.
    assert _within_k(xy, 12, k) == ring[12]
    half = training_groups(xy, gridsize=2, n_groups=10, neighbor_count=k, seed=3)
    assert half.size == 10


def _within_k(xy: np.ndarray, seed: int, k: int) -> set[int]:
    distance = np.hypot(*(xy - xy[seed]).T)
    distance[seed] = np.inf
    # Ties at the K-th distance count as within K (the KD-tree may break them either way).
    return set(np.flatnonzero(distance <= np.sort(distance)[k - 1] + 1e-9).tolist())


def test_seeds_are_drawn_without_replacement() -> None:
    xy = _positions(40)
    groups = training_groups(xy, gridsize=2, n_groups=40, neighbor_count=7, seed=2)
    assert groups.size == 40
    # Every position seeds once: a position never covered by any group would be suspicious,
    # but the seed need not be a member, so check coverage of candidates instead.
    _, nearest = cKDTree(xy).query(xy, k=8)
    holders = [i for i in range(40) if any(set(m) <= set(nearest[i, 1:]) for m in groups.indices)]
    assert len(holders) >= 20


def test_neighbour_count_below_the_group_size_is_refused() -> None:
    with pytest.raises(ValueError, match="neighbor_count"):
        training_groups(_positions(), gridsize=2, n_groups=10, neighbor_count=3, seed=0)
