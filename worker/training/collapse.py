"""Whether a trained model collapsed to the flat object (PtychoPINN has no such check).

A network that learned nothing still scores the flat object's loss, so a job is collapsed
when either holds:

- **loss**: its final validation loss (the training loss when nothing is held out) closed
  less than `MIN_GAP_CLOSED` of the gap between the flat object's loss and the ground
  truth's, both computed before training under the same physics (without a ground truth:
  it is not below the flat object's loss by at least `MIN_RELATIVE_DROP` of its size;
  where the flat object scores as well as the truth, the loss cannot decide);
- **output**: its test-split output is near constant where the probe lights it: the phase
  spread below `MIN_PHASE_STD` rad and the amplitude's relative spread below
  `MIN_AMPLITUDE_CV`, averaged over the patches.

Both need no scoring against the truth, so they hold for experimental data too. The
evidence (every number compared, with its threshold) goes into result.json with the flag.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

MIN_GAP_CLOSED = 0.05
MIN_RELATIVE_DROP = 1e-3
MIN_PHASE_STD = 0.02
MIN_AMPLITUDE_CV = 0.01
# Pixels whose probe intensity reaches this share of the brightest count as lit.
LIT_FRACTION = 0.1


@dataclass(frozen=True)
class Collapse:
    """The verdict on one trained model, and what it rests on."""

    collapsed: bool
    reason: str | None
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"collapsed": self.collapsed, "reason": self.reason, "evidence": self.evidence}


def output_spread(patches: np.ndarray, probe: np.ndarray) -> tuple[float, float]:
    """(phase std in rad, amplitude std / mean) inside the lit disc, averaged over patches.

    patches: (S, C, N, N) or (P, N, N) complex; probe: (N, N). The phase spread is taken
    about each patch's own mean phase direction (a constant offset is not structure).
    """
    flat = patches.reshape(-1, *patches.shape[-2:])
    power = np.abs(probe) ** 2
    lit = power >= LIT_FRACTION * power.max() if power.max() > 0 else np.ones_like(power, bool)
    values = flat[:, lit]
    amplitude = np.abs(values)
    mean_direction = np.angle(values.sum(axis=1, keepdims=True))
    phase = np.angle(values * np.exp(-1j * mean_direction))
    phase_std = float(np.mean(np.std(phase, axis=1)))
    mean_amplitude = amplitude.mean(axis=1)
    cv = np.std(amplitude, axis=1) / np.where(mean_amplitude > 0, mean_amplitude, 1.0)
    return phase_std, float(np.mean(cv))


def detect_collapse(
    *,
    final_loss: float | None,
    flat_loss: float | None,
    truth_loss: float | None,
    patches: np.ndarray,
    probe: np.ndarray,
    loss_name: str = "val_loss",
) -> Collapse:
    """Judge one model by its final loss against the flat object's and by its output."""
    phase_std, amplitude_cv = output_spread(patches, probe)
    evidence: dict[str, Any] = {
        "loss": loss_name,
        "final_loss": _finite(final_loss),
        "flat_loss": _finite(flat_loss),
        "truth_loss": _finite(truth_loss),
        "gap_closed": None,
        "min_gap_closed": MIN_GAP_CLOSED,
        "phase_std_rad": round(phase_std, 6),
        "min_phase_std_rad": MIN_PHASE_STD,
        "amplitude_cv": round(amplitude_cv, 6),
        "min_amplitude_cv": MIN_AMPLITUDE_CV,
    }
    reasons: list[str] = []
    final, flat, truth = evidence["final_loss"], evidence["flat_loss"], evidence["truth_loss"]
    if final is not None and flat is not None:
        if truth is not None and flat - truth <= 0:
            # The flat object scores as well as the truth (a weak object, few samples): the
            # loss cannot tell learning from none, and the output alone decides.
            evidence["loss_undecided"] = "the flat object's loss is not above the truth's"
        elif truth is not None:
            closed = (flat - final) / (flat - truth)
            evidence["gap_closed"] = round(closed, 6)
            if closed < MIN_GAP_CLOSED:
                reasons.append(
                    f"{loss_name} {final:.6g} closed {closed:.1%} of the gap from the flat "
                    f"object's {flat:.6g} to the truth's {truth:.6g} "
                    f"(under {MIN_GAP_CLOSED:.0%})"
                )
        elif flat - final < MIN_RELATIVE_DROP * abs(flat):
            reasons.append(f"{loss_name} {final:.6g} is not below the flat object's {flat:.6g}")
    if phase_std < MIN_PHASE_STD and amplitude_cv < MIN_AMPLITUDE_CV:
        reasons.append(
            f"the output is near constant: phase std {phase_std:.3g} rad, amplitude "
            f"spread {amplitude_cv:.3g} of its mean"
        )
    return Collapse(collapsed=bool(reasons), reason="; ".join(reasons) or None, evidence=evidence)


def _finite(value: float | None) -> float | None:
    if value is None:
        return None
    number = float(value)
    return round(number, 6) if math.isfinite(number) else None
