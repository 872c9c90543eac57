"""Gridsize-2 groups: deterministic, local, centred, in 2×2 order."""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from worker.training.grouping import covering_groups, training_groups


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


def test_members_are_among_the_seeds_k_nearest_and_offsets_are_centred() -> None:
    xy = _positions()
    k = 7
    groups = training_groups(xy, gridsize=2, n_groups=100, neighbor_count=k, seed=5)
    assert groups.indices.shape == (100, 4)
    assert groups.offsets.shape == (100, 4, 2)
    _, nearest = cKDTree(xy).query(xy, k=k)
    for members in groups.indices:
        assert len(set(members)) == 4
        # Some member is a seed whose K nearest hold the whole group.
        assert any(set(members) <= set(nearest[m]) for m in members)
    np.testing.assert_allclose(groups.offsets.mean(axis=1), 0.0, atol=1e-4)
    centre = xy[groups.indices].mean(axis=1, keepdims=True)
    np.testing.assert_allclose(groups.offsets, xy[groups.indices] - centre, atol=1e-4)


def test_members_are_in_two_by_two_order() -> None:
    groups = training_groups(_positions(), gridsize=2, n_groups=50, neighbor_count=7, seed=9)
    x, y = groups.offsets[..., 0], groups.offsets[..., 1]
    assert np.all(np.maximum(y[:, 0], y[:, 1]) <= np.minimum(y[:, 2], y[:, 3]))
    assert np.all(x[:, 0] <= x[:, 1])
    assert np.all(x[:, 2] <= x[:, 3])


def test_more_groups_than_positions_still_gives_distinct_groups() -> None:
    xy = _positions(20)
    groups = training_groups(xy, gridsize=2, n_groups=64, neighbor_count=7, seed=1)
    assert groups.size == 64
    assert len({tuple(sorted(m)) for m in groups.indices}) > 20


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
