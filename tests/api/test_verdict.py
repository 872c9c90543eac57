"""The verdict on a result: does the model beat the flat object, did it learn, did it collapse."""

from __future__ import annotations

from typing import Any

import pytest

from app.verdict import (
    LEARNED_MIN_PHASE_CORRELATION,
    LEARNED_PHASE_MAE_DROP,
    PERFECT,
    skill,
    tally,
    verdict,
    verdict_label,
)

FLAT = {"amplitude_mae": 0.08, "phase_mae": 0.2, "phase_ssim": 0.1, "phase_correlation": 0.0}


def result(phase_mae: float, phase_correlation: float, **extra: Any) -> dict[str, Any]:
    """A result.json as the worker writes it, reduced to what the verdict reads."""
    return {
        "metrics": {"phase_mae": phase_mae, "phase_correlation": phase_correlation},
        "baselines": {"flat": {"ours": FLAT, "ptychopinn": {"phase_mae": 0.01}}},
        **extra,
    }


def test_a_model_well_below_the_flat_object_and_correlated_learned() -> None:
    judged = verdict(result(phase_mae=0.1, phase_correlation=0.8))

    assert judged == {"beats_flat": True, "learned": True, "collapsed": False}
    assert verdict_label(judged) == "learned"


def test_the_thresholds_are_inclusive() -> None:
    edge = (1 - LEARNED_PHASE_MAE_DROP) * FLAT["phase_mae"]

    judged = verdict(result(phase_mae=edge, phase_correlation=LEARNED_MIN_PHASE_CORRELATION))

    assert judged["learned"] is True


@pytest.mark.parametrize(
    ("phase_mae", "phase_correlation"),
    [(0.18, 0.9), (0.1, 0.3)],  # only 10 % below the flat object; below it, yet uncorrelated
)
def test_beating_the_flat_object_is_not_yet_learning(
    phase_mae: float, phase_correlation: float
) -> None:
    judged = verdict(result(phase_mae, phase_correlation))

    assert judged == {"beats_flat": True, "learned": False, "collapsed": False}
    assert verdict_label(judged) == "beats flat only"


@pytest.mark.parametrize("phase_mae", [0.2, 0.25])
def test_a_model_at_or_above_the_flat_objects_error_is_no_better_than_flat(
    phase_mae: float,
) -> None:
    judged = verdict(result(phase_mae, phase_correlation=0.9))

    assert judged == {"beats_flat": False, "learned": False, "collapsed": False}
    assert verdict_label(judged) == "no better than flat"


def test_the_worker_saying_collapsed_is_marked_in_either_form() -> None:
    flag = verdict(result(0.25, -0.04, collapsed=True))
    detail = verdict(result(0.1, 0.8, collapse={"collapsed": True, "reason": "constant output"}))
    cleared = verdict(result(0.1, 0.8, collapsed=False, collapse={"collapsed": True}))

    assert flag == {"beats_flat": False, "learned": False, "collapsed": True}
    assert verdict_label(flag) == "collapsed, no better than flat"
    assert detail["collapsed"] is True
    assert verdict_label(detail) == "collapsed, learned"
    assert cleared["collapsed"] is False  # the top-level flag is the worker's last word


@pytest.mark.parametrize(
    "incomplete",
    [
        None,
        {},
        {"metrics": {"phase_mae": 0.1, "phase_correlation": 0.9}},  # no flat object
        {"baselines": {"flat": {"ours": FLAT}}},  # not trained: no metrics
        result(float("nan"), 0.9),  # a diverged model
        {"metrics": {"phase_mae": 0.1}, "baselines": {"flat": {"ours": {"phase_mae": None}}}},
    ],
)
def test_missing_numbers_leave_the_verdict_open(incomplete: dict[str, Any] | None) -> None:
    judged = verdict(incomplete)

    assert judged == {"beats_flat": None, "learned": None, "collapsed": False}
    assert verdict_label(judged) is None


def test_without_a_correlation_only_beats_flat_is_judged() -> None:
    judged = verdict({"metrics": {"phase_mae": 0.1}, "baselines": {"flat": {"ours": FLAT}}})

    assert judged == {"beats_flat": True, "learned": None, "collapsed": False}


def test_a_fallback_flat_object_stands_in_only_where_the_result_has_none() -> None:
    elsewhere = {"phase_mae": 0.05}
    bare = {"metrics": {"phase_mae": 0.1, "phase_correlation": 0.9}}

    assert verdict(bare, elsewhere)["beats_flat"] is False
    assert verdict(result(0.1, 0.9), elsewhere)["beats_flat"] is True  # the worker's wins


def test_tally_counts_each_word() -> None:
    judged = [verdict(result(0.1, 0.9)), verdict(result(0.3, 0.0, collapsed=True))]

    assert tally(judged) == {
        "learned": 1,
        "beats flat only": 0,
        "no better than flat": 1,
        "collapsed": 1,
    }


def test_skill_is_the_workers() -> None:
    from worker.training.assess import PERFECT as WORKER_PERFECT
    from worker.training.assess import skill as worker_skill

    model = {"amplitude_mae": 0.05, "phase_mae": 0.1, "amplitude_ssim": 0.5}
    model |= {"phase_ssim": 0.4, "phase_correlation": 0.7}
    flat = {**FLAT, "amplitude_ssim": 0.3}

    assert WORKER_PERFECT["ours"] == PERFECT
    assert skill(model, flat) == pytest.approx(worker_skill(model, flat, "ours"))
    assert skill({"phase_mae": 0.1}, flat)["phase_ssim"] is None
