"""Collapse detection: the loss against the flat object's and the truth's, and the output."""

from __future__ import annotations

import numpy as np

from worker.training.collapse import MIN_GAP_CLOSED, detect_collapse, output_spread


def _probe(n: int = 32) -> np.ndarray:
    y, x = np.mgrid[:n, :n] - n / 2
    return np.exp(-(x**2 + y**2) / (2 * (n / 6) ** 2)).astype(np.complex64)


def _textured(count: int = 6, n: int = 32, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    amplitude = 0.8 + 0.2 * rng.random((count, n, n))
    phase = rng.uniform(-1.0, 1.0, (count, n, n))
    return (amplitude * np.exp(1j * phase)).astype(np.complex64)


def test_a_constant_output_is_collapsed_whatever_its_loss() -> None:
    flat = np.full((6, 32, 32), 0.9 * np.exp(0.4j), dtype=np.complex64)
    verdict = detect_collapse(
        final_loss=-130.0, flat_loss=-122.0, truth_loss=-131.0, patches=flat, probe=_probe()
    )
    assert verdict.collapsed
    assert verdict.reason is not None
    assert "near constant" in verdict.reason
    assert verdict.evidence["phase_std_rad"] < 1e-6
    assert verdict.evidence["gap_closed"] > MIN_GAP_CLOSED  # the loss alone would pass


def test_a_loss_that_stays_at_the_flat_objects_is_collapsed() -> None:
    verdict = detect_collapse(
        final_loss=-122.2, flat_loss=-122.0, truth_loss=-131.0, patches=_textured(),
        probe=_probe(),
    )  # fmt: skip
    assert verdict.collapsed
    assert verdict.reason is not None
    assert "gap" in verdict.reason
    assert abs(verdict.evidence["gap_closed"] - 0.2 / 9.0) < 1e-4


def test_a_model_that_closes_the_gap_with_structure_is_not_collapsed() -> None:
    verdict = detect_collapse(
        final_loss=-129.0, flat_loss=-122.0, truth_loss=-131.0, patches=_textured(),
        probe=_probe(),
    )  # fmt: skip
    assert not verdict.collapsed
    assert verdict.reason is None
    assert verdict.to_dict()["evidence"]["gap_closed"] > 0.7


def test_without_a_truth_the_loss_must_drop_below_the_flat_objects() -> None:
    common = {"flat_loss": -122.0, "truth_loss": None, "patches": _textured(), "probe": _probe()}
    assert detect_collapse(final_loss=-121.99, **common).collapsed  # type: ignore[arg-type]
    assert not detect_collapse(final_loss=-125.0, **common).collapsed  # type: ignore[arg-type]


def test_a_per_patch_phase_offset_is_not_structure() -> None:
    # Each patch flat but with its own global phase: still a constant output.
    offsets = np.exp(1j * np.linspace(-3.0, 3.0, 6))[:, None, None]
    patches = (np.ones((6, 32, 32)) * offsets).astype(np.complex64)
    phase_std, amplitude_cv = output_spread(patches, _probe())
    assert phase_std < 1e-5
    assert amplitude_cv < 1e-5
    phase_std, _ = output_spread(_textured(), _probe())
    assert phase_std > 0.3


def test_where_the_flat_object_scores_like_the_truth_the_output_decides() -> None:
    common = {"flat_loss": -137.5, "truth_loss": -137.2, "probe": _probe()}
    textured = detect_collapse(final_loss=-125.0, patches=_textured(), **common)  # type: ignore[arg-type]
    assert not textured.collapsed
    assert "loss_undecided" in textured.evidence
    constant = np.ones((6, 32, 32), dtype=np.complex64)
    assert detect_collapse(final_loss=-125.0, patches=constant, **common).collapsed  # type: ignore[arg-type]
