"""Writing a job's assessment: lines for train.log, JSON-ready values for result.json."""

from __future__ import annotations

from collections.abc import Mapping

from worker.training.assess import Assessment
from worker.training.callbacks import TrainLog


def _line(values: Mapping[str, float | None]) -> str:
    return " ".join(f"{k}={v:.4g}" if v is not None else f"{k}=n/a" for k, v in values.items())


def log_assessment(log: TrainLog, assessment: Assessment) -> None:
    """One line per block: ours, PtychoPINN's, each baseline, the skill."""
    log.write(f"stitching {_line_plain(assessment.stitching)}")
    log.write("metrics " + _line(assessment.metrics["ours"]))
    log.write("metrics_ptychopinn " + _line(assessment.metrics["ptychopinn"]))
    for name, blocks in assessment.baselines.items():
        for convention, scores in blocks.items():
            log.write(f"baseline {name} {convention} " + _line(scores))
    for convention, skill in assessment.skill.items():
        log.write(f"skill_vs_flat {convention} " + _line(skill))


def _line_plain(values: dict[str, object]) -> str:
    return " ".join(f"{k}={v}" for k, v in values.items())
