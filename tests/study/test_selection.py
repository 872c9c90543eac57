"""Phase D's selection on positions alone: direct, greedy, the minimum, the bound."""

from __future__ import annotations

import math

import numpy as np
import pytest

from app.study.design import StudyDesign
from app.study.scan import make_scan, train_mask
from app.study.selection import (
    geometry_bound,
    minimum_acceptance,
    select_direct,
    select_greedy,
    select_positions,
)
from app.study.simulate import PRESETS


def _grid(side: int, step: float) -> tuple[np.ndarray, np.ndarray]:
    index = np.arange(side * side)
    return (index % side) * step + 100.0, (index // side) * step + 50.0


def test_fly64_random_scan_rejects_dense_and_sparse_with_recorded_rates() -> None:
    fly64, design = PRESETS["fly64"], StudyDesign()
    rng = np.random.default_rng(np.random.SeedSequence(fly64.seed, spawn_key=(1,)))
    x, y = make_scan("random", fly64.n_positions, fly64.object_size, fly64.patch_size, rng)
    for split in (train_mask(y), ~train_mask(y)):
        for view in ("dense", "sparse"):
            threshold = design.spacing_threshold(view, fly64.patch_size)
            result = select_positions(x[split], y[split], threshold, 0.10)
            assert not result.accepted
            assert result.strategy is None
            assert result.direct_rate < 0.01
            assert result.greedy_rate is not None
            assert 0 < result.greedy_rate < 0.10
            assert result.acceptance_rate == result.greedy_rate
            assert result.n_positions == int(split.sum())
            assert f"{result.greedy_rate:.2%}" in (result.reason or "")
    # The study's own log: dense, dose 1000, train: 0 % direct, 0.8 % greedy.
    dense = select_positions(x[train_mask(y)], y[train_mask(y)], 38.4, 0.10)
    assert dense.greedy_rate == pytest.approx(0.008, abs=0.003)


def test_raster_with_step_at_least_s_is_accepted_directly_at_100_percent() -> None:
    for step in (38.4, 40.0):
        x, y = _grid(12, step)
        result = select_positions(x, y, 38.4, 0.10)
        assert result.accepted
        assert result.strategy == "direct"
        assert result.direct_rate == 1.0
        assert result.acceptance_rate == 1.0
        assert result.greedy_rate is None
        assert result.n_accepted == 144


def test_direct_fails_and_greedy_succeeds_on_a_tight_line() -> None:
    # Neighbours 0.6 S apart: no position is S from all others, every second one is.
    x = np.arange(40) * 0.6 * 10.0
    y = np.zeros(40)
    result = select_positions(x, y, 10.0, 0.10)
    assert result.direct_rate == 0.0
    assert result.accepted
    assert result.strategy == "greedy"
    assert result.greedy_rate == pytest.approx(0.5)
    np.testing.assert_array_equal(np.flatnonzero(result.mask), np.arange(0, 40, 2))


def test_greedy_keeps_spacing_and_visits_in_y_then_x_order() -> None:
    rng = np.random.default_rng(4)
    x, y = rng.uniform(0, 200, 400), rng.uniform(0, 100, 400)
    kept = select_greedy(x, y, 15.0)
    px, py = x[kept], y[kept]
    distances = np.hypot(px[:, None] - px[None], py[:, None] - py[None])
    np.fill_diagonal(distances, np.inf)
    assert distances.min() >= 15.0
    # Maximal: each dropped position is within S of a kept one visited before it.
    order = np.lexsort((x, y))
    rank = np.empty(400, dtype=int)
    rank[order] = np.arange(400)
    for i in np.flatnonzero(~kept):
        near = np.hypot(px - x[i], py - y[i]) < 15.0
        assert np.any(near & (rank[kept] < rank[i]))


def test_direct_keeps_positions_whose_nearest_neighbour_is_far() -> None:
    x = np.array([0.0, 1.0, 50.0, 100.0])
    y = np.zeros(4)
    np.testing.assert_array_equal(select_direct(x, y, 10.0), [False, False, True, True])


def test_geometry_mode_computes_the_bound() -> None:
    x, y = _grid(10, 10.0)  # bbox 90 × 90, n = 100
    for threshold in (30.0, 60.0, 500.0):
        raw = 90 * 90 / (100 * math.pi * (threshold / 2) ** 2)
        bound = min(raw, 0.10)
        assert geometry_bound(x, y, threshold) == pytest.approx(bound)
        expected = max(0.0005, 0.8 * bound)
        assert minimum_acceptance(x, y, threshold, "geometry") == pytest.approx(expected)
    assert minimum_acceptance(x, y, 60.0, "geometry") == pytest.approx(
        0.8 * 8100 / (100 * math.pi * 900)
    )
    assert minimum_acceptance(x, y, 500.0, "geometry") == 0.0005
    assert minimum_acceptance(x, y, 60.0, 0.25) == 0.25
    result = select_positions(x, y, 60.0, "geometry")
    assert result.min_acceptance == pytest.approx(0.8 * 8100 / (100 * math.pi * 900))
