"""The study report of a run: quality per dose × view, with trivial baselines beside it.

One row per training job and per skipped view, in study order (dose, then view). Metric
values come from the job's result. Baselines come from the result too when the worker
scored them (`baselines.<name>.ours`: "flat" and "input_only", stitched like the model);
a job without them (not trained yet, failed, or trained by an older worker) has no flat
baseline and no verdict: the API reads no study data file (a test split swapped for a FIFO
or a link, or a huge one, cannot stall or bloat a report). `baseline_source` is "result"
when a row holds the worker's flat object, else null.
CSV holds the same rows, each metric followed by its baselines (`<metric>_<baseline>`),
then the skill against the flat object, the losses and the verdict.

pty-chi (study.md §9, Phase G): a row's `ptychi` holds, per engine, the metrics of the
run's reconstruction of the same dose and view's test split (the split the network is
scored on), and `vs_PtyChi` the network's metrics minus the first engine's (Phase G's
deltas: negative is better for an MAE). CSV adds `<metric>_ptychi` (that engine's) and
`<metric>_vs_ptychi`.
"""

from __future__ import annotations

import csv
import io
import math
from typing import Any

from pydantic import BaseModel
from sqlmodel import Session, col, select

from app.baselines import METRIC_KEYS
from app.errors import NotFound
from app.models import Job, Run, RunStatus, SkipEvent, derive_run_status
from app.verdict import (
    FLAT,
    INPUT_ONLY,
    LEARNED_MIN_PHASE_CORRELATION,
    LEARNED_PHASE_MAE_DROP,
    RULE,
    SKILL_KEYS,
    Verdict,
    collapse_reason,
    skill,
    tally,
    verdict,
    verdict_label,
)

# Which way is better, for readers and for the figure's labels.
LOWER_IS_BETTER = frozenset({"amplitude_mae", "phase_mae"})
VIEW_ORDER = {"baseline": 0, "dense": 1, "sparse": 2}
BASELINE_NAMES = (FLAT, INPUT_ONLY)
BASELINE_DESCRIPTIONS = {
    FLAT: "a flat object (one amplitude, constant phase): no learning at all",
    INPUT_ONLY: "the back-projected input patterns, stitched without any network",
}
# What a reader sees beside a number: "flat" alone reads like one of the study's views.
BASELINE_LABELS = {FLAT: "flat object (no learning)", INPUT_ONLY: "input only (no network)"}
SKILLED = ("model", INPUT_ONLY)


class ReportRow(BaseModel):
    dose: float
    view: str
    gridsize: int | None
    job_id: int | None
    status: str  # the job's status, or "skipped"
    epochs_completed: int | None = None
    final_loss: float | None = None
    duration_s: float | None = None
    metrics: dict[str, float | None] = {}
    baselines: dict[str, dict[str, float | None]] = {}
    # The flat object's: "result" (the worker's, which the verdict then uses), else None.
    baseline_source: str | None = None
    skip_reason: str | None = None
    # Against the flat object: "model" and "input_only" → metric → skill (1 perfect, 0 flat).
    skill: dict[str, dict[str, float | None]] = {}
    val_loss: float | None = None
    reference_val_loss: float | None = None  # the ground truth's loss on the same samples
    flat_val_loss: float | None = None  # the flat object's, before training
    beats_flat: bool | None = None
    learned: bool | None = None
    collapsed: bool = False
    collapse_reason: str | None = None
    verdict: str | None = None  # "learned", "no better than flat", "collapsed, …"; None unjudged
    # engine → {"job_id", "status", "metrics"}: the test split's pty-chi reconstructions.
    ptychi: dict[str, dict[str, Any]] = {}
    vs_PtyChi: dict[str, float | None] = {}  # noqa: N815 (Phase G's name)


class StudyReport(BaseModel):
    run_id: int
    status: RunStatus
    baseline_names: list[str] = list(BASELINE_NAMES)
    baseline_descriptions: dict[str, str] = dict(BASELINE_DESCRIPTIONS)
    baseline_labels: dict[str, str] = dict(BASELINE_LABELS)
    metric_keys: list[str] = list(METRIC_KEYS)
    lower_is_better: list[str] = sorted(LOWER_IS_BETTER)
    skill_keys: list[str] = list(SKILL_KEYS)
    verdict_rule: str = RULE
    learned_phase_mae_drop: float = LEARNED_PHASE_MAE_DROP
    learned_min_phase_correlation: float = LEARNED_MIN_PHASE_CORRELATION
    verdict_counts: dict[str, int] = {}  # word → jobs it applies to
    doses: list[float]
    views: list[str]
    rows: list[ReportRow]


def build_report(*, session: Session, run_id: int) -> StudyReport:
    """The run's report; NotFound for an unknown run."""
    run = session.get(Run, run_id)
    if run is None:
        raise NotFound("run", run_id)
    jobs = list(session.exec(select(Job).where(Job.run_id == run_id).order_by(col(Job.position))))
    skips = list(session.exec(select(SkipEvent).where(SkipEvent.run_id == run_id)))
    reconstructions = _reconstructions(jobs)
    rows = [
        _with_ptychi(_job_row(job), reconstructions.get((job.dose, job.view), {}))
        for job in jobs
        if job.kind == "train"
    ]
    rows += [_skip_row(skip) for skip in skips]
    rows.sort(key=lambda row: (row.dose, VIEW_ORDER.get(row.view, 99), row.view))
    views = sorted({row.view for row in rows}, key=lambda v: (VIEW_ORDER.get(v, 99), v))
    return StudyReport(
        run_id=run_id,
        status=derive_run_status([job.status for job in jobs]),
        doses=sorted({row.dose for row in rows}),
        views=views,
        rows=rows,
        verdict_counts=tally(_row_verdict(row) for row in rows if row.job_id is not None),
    )


def _job_row(job: Job) -> ReportRow:
    result = job.result or {}
    metrics = result.get("metrics") if isinstance(result.get("metrics"), dict) else {}
    baselines, source = _baselines(result)
    flat = baselines.get(FLAT, {})
    judged = verdict(result, flat)
    scored = {"model": metrics or {}, INPUT_ONLY: baselines.get(INPUT_ONLY, {})}
    return ReportRow(
        dose=job.dose,
        view=job.view,
        gridsize=job.gridsize,
        job_id=job.id,
        status=job.status.value,
        epochs_completed=_int(result.get("epochs_completed")),
        final_loss=_number(result.get("final_loss")),
        duration_s=_number(result.get("duration_s")),
        metrics={key: _number(metrics.get(key)) for key in METRIC_KEYS} if metrics else {},
        baselines=baselines,
        baseline_source=source,
        skill={name: skill(scored[name], flat) for name in SKILLED if scored[name] and flat},
        val_loss=_number(result.get("val_loss")),
        reference_val_loss=_number(result.get("reference_val_loss")),
        flat_val_loss=_number(result.get("flat_val_loss")),
        **judged,
        collapse_reason=collapse_reason(result),
        verdict=verdict_label(judged),
    )


def _reconstructions(jobs: list[Job]) -> dict[tuple[float, str], dict[str, dict[str, Any]]]:
    """(dose, view) → engine → the test split's reconstruction: job id, status, metrics."""
    found: dict[tuple[float, str], dict[str, dict[str, Any]]] = {}
    for job in jobs:
        if job.kind != "reconstruct" or job.split != "test" or job.engine is None:
            continue
        result = job.result or {}
        metrics = result.get("metrics") if isinstance(result.get("metrics"), dict) else {}
        found.setdefault((job.dose, job.view), {})[job.engine] = {
            "job_id": job.id,
            "status": job.status.value,
            "metrics": {key: _number(metrics.get(key)) for key in METRIC_KEYS} if metrics else {},
        }
    return found


def _with_ptychi(row: ReportRow, engines: dict[str, dict[str, Any]]) -> ReportRow:
    if not engines:
        return row
    first = next(iter(engines.values()))["metrics"]
    deltas: dict[str, float | None] = {}
    for key in METRIC_KEYS:
        ours, theirs = row.metrics.get(key), first.get(key)
        deltas[key] = None if ours is None or theirs is None else ours - theirs
    return row.model_copy(update={"ptychi": engines, "vs_PtyChi": deltas})


def first_ptychi(row: ReportRow) -> dict[str, float | None]:
    """The metrics of the row's first pty-chi engine ({} when the run has none)."""
    return next(iter(row.ptychi.values()))["metrics"] if row.ptychi else {}


def _row_verdict(row: ReportRow) -> Verdict:
    return {"beats_flat": row.beats_flat, "learned": row.learned, "collapsed": row.collapsed}


def _baselines(result: dict[str, Any]) -> tuple[dict[str, dict[str, float | None]], str | None]:
    scored = result.get("baselines")
    blocks: dict[str, dict[str, float | None]] = {}
    for name, conventions in (scored if isinstance(scored, dict) else {}).items():
        values = conventions.get("ours") if isinstance(conventions, dict) else None
        if isinstance(values, dict):
            blocks[name] = {key: _number(values.get(key)) for key in METRIC_KEYS}
    return blocks, ("result" if FLAT in blocks else None)


def _skip_row(skip: SkipEvent) -> ReportRow:
    return ReportRow(
        dose=skip.dose,
        view=skip.view,
        gridsize=None,
        job_id=None,
        status="skipped",
        skip_reason=skip.reason,
    )


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
        return number if math.isfinite(number) else None
    return None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def report_csv(report: StudyReport) -> str:
    """The report's rows as CSV: each metric, then its baselines (`<metric>_<baseline>`).

    After them the skill against the flat object (`<metric>_skill` for the model,
    `<metric>_input_only_skill`), the losses and the verdict.
    """
    head = ["dose", "view", "gridsize", "job_id", "status", "epochs_completed", "final_loss"]
    names = report.baseline_names
    metric_columns = [
        column for key in METRIC_KEYS for column in (key, *(f"{key}_{name}" for name in names))
    ]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    skill_columns = [
        f"{key}_skill" if name == "model" else f"{key}_{name}_skill"
        for key in report.skill_keys
        for name in SKILLED
    ]
    losses = ["val_loss", "reference_val_loss", "flat_val_loss"]
    judged = ["beats_flat", "learned", "collapsed", "verdict"]
    ptychi = [f"{key}_{suffix}" for key in METRIC_KEYS for suffix in ("ptychi", "vs_ptychi")]
    tail = [*skill_columns, *losses, *judged, "baseline_source", "skip_reason", *ptychi]
    writer.writerow([*head, "duration_s", *metric_columns, *tail])
    for row in report.rows:
        values: list[Any] = [row.dose, row.view, row.gridsize, row.job_id, row.status]
        values += [row.epochs_completed, row.final_loss, row.duration_s]
        for key in METRIC_KEYS:
            values.append(row.metrics.get(key))
            values += [row.baselines.get(name, {}).get(key) for name in names]
        for key in report.skill_keys:
            values += [row.skill.get(name, {}).get(key) for name in SKILLED]
        values += [row.val_loss, row.reference_val_loss, row.flat_val_loss]
        values += [_flag(row.beats_flat), _flag(row.learned), _flag(row.collapsed), row.verdict]
        values += [row.baseline_source, row.skip_reason]
        theirs = first_ptychi(row)
        for key in METRIC_KEYS:
            values += [theirs.get(key), row.vs_PtyChi.get(key)]
        writer.writerow(["" if value is None else value for value in values])
    return buffer.getvalue()


def _flag(value: bool | None) -> str | None:
    return None if value is None else str(value).lower()
