"""The probe-disc overlap measure on hand-built scans with known answers."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from app.study import probe_overlap
from app.study.probe_overlap import (
    covered_fractions,
    disc_overlap_fraction,
    measure_probe_overlap,
    probe_disc_diameter,
)

WAIST = 8.0  # px: the Gaussian probe's 1/e² radius, so its disc is 2 · WAIST across


def gaussian_probe(size: int = 64, waist: float = WAIST, centre: float | None = None) -> np.ndarray:
    """A probe with |P|² = exp(−2 r² / w²): 1 − e⁻² of its energy lies within r = w."""
    c = size / 2 if centre is None else centre
    rows, cols = np.indices((size, size))
    r2 = (rows - c) ** 2 + (cols - c + 3) ** 2
    return (np.exp(-r2 / waist**2) * np.exp(0.3j * cols)).astype(np.complex64)


def raster(step: float, side: int = 10) -> tuple[np.ndarray, np.ndarray]:
    index = np.arange(side * side)
    return 100.0 + (index % side) * step, 80.0 + (index // side) * step


@pytest.fixture(scope="module")
def diameter() -> float:
    return probe_disc_diameter(gaussian_probe())


def test_the_disc_of_a_gaussian_probe_is_its_one_over_e_squared_diameter(diameter: float) -> None:
    assert diameter == pytest.approx(2 * WAIST, abs=0.3)
    assert probe_disc_diameter(gaussian_probe(centre=20.0)) == pytest.approx(diameter, abs=0.3)
    assert probe_disc_diameter(gaussian_probe(waist=12.0)) == pytest.approx(24.0, abs=0.3)


def test_a_dark_probe_has_no_disc() -> None:
    with pytest.raises(ValueError, match="intensity"):
        probe_disc_diameter(np.zeros((16, 16), dtype=np.complex64))
    assert measure_probe_overlap(np.array([1.0]), np.array([2.0]), np.zeros((16, 16))) is None


@pytest.mark.parametrize(
    ("distance", "expected"),
    [(0.0, 1.0), (10.0, (2 / math.pi) * (math.pi / 3 - 0.5 * math.sqrt(0.75))), (20.0, 0.0),
     (35.0, 0.0)],
)  # fmt: skip
def test_two_circles_share_the_analytic_lens(distance: float, expected: float) -> None:
    assert float(disc_overlap_fraction(distance, 20.0)) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("distance", [0.0, 3.0, 8.0, 12.5, 16.0, 19.0, 40.0])
def test_two_positions_overlap_by_the_lens_of_their_discs(distance: float, diameter: float) -> None:
    angle = 0.7
    x = np.array([150.3, 150.3 + distance * math.cos(angle)])
    y = np.array([90.6, 90.6 + distance * math.sin(angle)])
    measured = measure_probe_overlap(x, y, gaussian_probe())
    assert measured is not None
    lens = float(disc_overlap_fraction(distance, diameter))
    assert measured["n_positions"] == 2
    assert measured["probe_diameter_px"] == pytest.approx(diameter, abs=0.005)
    assert measured["median_spacing_px"] == pytest.approx(distance, abs=0.005)
    assert measured["linear_overlap"] == pytest.approx(max(0.0, 1 - distance / diameter), abs=1e-4)
    assert measured["nearest_neighbour_overlap"] == pytest.approx(lens, abs=1e-4)
    assert measured["knn_overlap"] == pytest.approx(lens, abs=1e-4)  # one neighbour each
    assert measured["covered_fraction"] == pytest.approx(lens, abs=0.01)


def test_three_in_a_row_cover_the_middle_disc_twice(diameter: float) -> None:
    # At spacing d ≥ R the middle disc's two lenses are disjoint: it is covered 2 f(d).
    d = 0.6 * diameter
    points = np.array([[100.0, 100.0], [100.0 + d, 100.0], [100.0 + 2 * d, 100.0]])
    lens = float(disc_overlap_fraction(d, diameter))
    covered = covered_fractions(points, diameter)
    np.testing.assert_allclose(covered, [lens, 2 * lens, lens], atol=0.01)


def test_a_raster_overlaps_by_its_step(diameter: float) -> None:
    step = 0.45 * diameter  # under the radius: every interior disc is covered everywhere
    x, y = raster(step)
    measured = measure_probe_overlap(x, y, gaussian_probe(), neighbor_count=4)
    assert measured is not None
    lens = float(disc_overlap_fraction(step, diameter))
    assert measured["median_spacing_px"] == pytest.approx(step, abs=0.005)
    assert measured["nearest_neighbour_overlap"] == pytest.approx(lens, abs=1e-4)
    # Interior positions have their 4 neighbours at one step; edges and corners reach diagonals.
    assert lens * 0.8 < measured["knn_overlap"] < lens
    covered = covered_fractions(np.column_stack([x, y]), diameter).reshape(10, 10)
    np.testing.assert_array_equal(covered[1:-1, 1:-1], 1.0)
    assert np.all(covered[0] < 1.0)
    assert measured["covered_fraction"] == pytest.approx(covered.mean(), abs=1e-4)


def test_a_raster_wider_than_the_disc_does_not_overlap(diameter: float) -> None:
    measured = measure_probe_overlap(*raster(1.05 * diameter), gaussian_probe())
    assert measured is not None
    assert measured["linear_overlap"] == 0.0
    for name in ("nearest_neighbour_overlap", "knn_overlap", "covered_fraction"):
        assert measured[name] == 0.0, name


def test_a_single_position_overlaps_nothing() -> None:
    measured = measure_probe_overlap(np.array([50.0]), np.array([60.0]), gaussian_probe())
    assert measured is not None
    assert measured["n_positions"] == 1
    assert measured["median_spacing_px"] is None
    assert measured["linear_overlap"] is None
    for name in ("nearest_neighbour_overlap", "knn_overlap", "covered_fraction"):
        assert measured[name] == 0.0, name
    assert measure_probe_overlap(np.array([]), np.array([]), gaussian_probe()) is None


def test_sparse_counting_agrees_with_the_dense_grid(
    diameter: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    points = np.random.default_rng(3).uniform(0, 200, (300, 2))
    dense = covered_fractions(points, diameter)
    monkeypatch.setattr(probe_overlap, "_DENSE_GRID_CELLS", 0)
    np.testing.assert_array_equal(covered_fractions(points, diameter), dense)


def test_five_thousand_positions_are_measured_quickly() -> None:
    x, y = np.random.default_rng(5).uniform(32, 432, (2, 5000))
    started = time.perf_counter()
    measured = measure_probe_overlap(x, y, gaussian_probe(waist=16.0))
    # Well under a second on an idle core; the bound leaves room for a busy test machine.
    assert time.perf_counter() - started < 3.0
    assert measured is not None
    assert measured["covered_fraction"] > 0.99
