"""Whether a job's model learned anything: its scores set against the flat object's.

A flat object (one amplitude, constant phase) is what a network that learned nothing can
still reach, so a model is judged against it, on the service's own metrics ("ours"):

- beats_flat: the model's phase MAE is below the flat object's;
- learned: its phase MAE is at least `LEARNED_PHASE_MAE_DROP` below the flat object's and its
  phase correlation with the truth reaches `LEARNED_MIN_PHASE_CORRELATION` (a flat phase has
  none, so a lower MAE alone can be a smoother blur, not a recovered object);
- collapsed: the worker said the output collapsed (to a constant, or across seeds).

The flat object is the worker's (`baselines.flat.ours` in result.json) when the result has
one: scored on the very pixels and stitching the model was. Without numbers the first two
are None, not False: a failed or untrained job has not been judged. Free of numpy, so the
CLI and the live progress use it as the report does.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, TypedDict

FLAT = "flat"
INPUT_ONLY = "input_only"
LEARNED_PHASE_MAE_DROP = 0.2
LEARNED_MIN_PHASE_CORRELATION = 0.5
# The best value of each metric that has one; the worker's skill uses the same (assess.PERFECT).
PERFECT = {
    "amplitude_mae": 0.0,
    "phase_mae": 0.0,
    "amplitude_ssim": 1.0,
    "phase_ssim": 1.0,
    "phase_correlation": 1.0,
}
SKILL_KEYS = tuple(PERFECT)

LEARNED = "learned"
BEATS_FLAT_ONLY = "beats flat only"
NO_BETTER_THAN_FLAT = "no better than flat"
COLLAPSED = "collapsed"
WORDS = (LEARNED, BEATS_FLAT_ONLY, NO_BETTER_THAN_FLAT, COLLAPSED)
RULE = (
    f"learned: phase MAE at least {LEARNED_PHASE_MAE_DROP:.0%} below the flat object's and "
    f"phase correlation ≥ {LEARNED_MIN_PHASE_CORRELATION:g}; no better than flat: phase MAE "
    "not below the flat object's"
)


class Verdict(TypedDict):
    beats_flat: bool | None
    learned: bool | None
    collapsed: bool


def verdict(result: Mapping[str, Any] | None, flat: Mapping[str, Any] | None = None) -> Verdict:
    """The judgement of one result; `flat` stands in only where the result has no flat object."""
    result = result or {}
    metrics = _block(result.get("metrics"))
    reference = flat_metrics(result) or _block(flat)
    model_mae = _number(metrics.get("phase_mae"))
    flat_mae = _number(reference.get("phase_mae"))
    correlation = _number(metrics.get("phase_correlation"))
    beats: bool | None = None
    learned: bool | None = None
    if model_mae is not None and flat_mae is not None:
        beats = model_mae < flat_mae
        if correlation is not None:
            drop_met = model_mae <= (1.0 - LEARNED_PHASE_MAE_DROP) * flat_mae
            learned = drop_met and correlation >= LEARNED_MIN_PHASE_CORRELATION
    return {"beats_flat": beats, "learned": learned, "collapsed": collapsed(result)}


def verdict_words(judged: Verdict) -> list[str]:
    """The plain words for a verdict, e.g. ["collapsed", "no better than flat"]; [] unjudged."""
    words = [COLLAPSED] if judged["collapsed"] else []
    if judged["beats_flat"] is False:
        words.append(NO_BETTER_THAN_FLAT)
    elif judged["learned"]:
        words.append(LEARNED)
    elif judged["beats_flat"]:
        words.append(BEATS_FLAT_ONLY)
    return words


def verdict_label(judged: Verdict) -> str | None:
    """The words joined for a cell ("collapsed, no better than flat"), None when unjudged."""
    return ", ".join(verdict_words(judged)) or None


def collapsed(result: Mapping[str, Any]) -> bool:
    """The worker's collapse flag; results written before it existed did not collapse."""
    flag = result.get("collapsed")
    if isinstance(flag, bool):
        return flag
    detail = result.get("collapse")
    return isinstance(detail, Mapping) and detail.get("collapsed") is True


def collapse_reason(result: Mapping[str, Any]) -> str | None:
    detail = result.get("collapse")
    reason = detail.get("reason") if isinstance(detail, Mapping) else None
    return reason if isinstance(reason, str) and reason else None


def flat_metrics(result: Mapping[str, Any]) -> dict[str, Any]:
    """The worker's flat object on our metrics ({} when the result has none)."""
    return baseline_metrics(result, FLAT)


def baseline_metrics(result: Mapping[str, Any], name: str) -> dict[str, Any]:
    baselines = result.get("baselines")
    conventions = baselines.get(name) if isinstance(baselines, Mapping) else None
    return _block(conventions.get("ours") if isinstance(conventions, Mapping) else None)


def skill(
    scores: Mapping[str, Any], flat: Mapping[str, Any], keys: Iterable[str] = SKILL_KEYS
) -> dict[str, float | None]:
    """(score − flat) / (perfect − flat): 1 perfect, 0 no better than flat, below 0 worse."""
    out: dict[str, float | None] = {}
    for key in keys:
        value, base = _number(scores.get(key)), _number(flat.get(key))
        if value is None or base is None or abs(PERFECT[key] - base) <= 1e-12:
            out[key] = None
        else:
            out[key] = (value - base) / (PERFECT[key] - base)
    return out


def tally(verdicts: Iterable[Verdict]) -> dict[str, int]:
    """How many judged jobs each word applies to, every word listed."""
    counts = dict.fromkeys(WORDS, 0)
    for judged in verdicts:
        for word in verdict_words(judged):
            counts[word] += 1
    return counts


def _block(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {}


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
        return number if math.isfinite(number) else None
    return None
