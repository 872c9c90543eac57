"""Live progress of a run: each job's epoch of total, loss and ETA, read from the database.

A running job's epoch (counted from 1) and its total come from its progress columns (the
worker's heartbeat); before the first report the total is the run's training option. ETAs
are estimates: a running job's from the share of its epochs done, or else from how long the
run's finished jobs took; a run's from the work left spread over the jobs running now.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel
from sqlmodel import Session, col, func, select

from app.core.files import as_utc, finite_number
from app.errors import NotFound
from app.models import (
    TERMINAL_STATUSES,
    Job,
    JobStatus,
    Run,
    RunStatus,
    SkipEvent,
    SkipEventPublic,
    derive_run_status,
)
from app.options import TrainingOptions
from app.verdict import verdict, verdict_label

DEFAULT_EPOCHS = TrainingOptions.model_fields["epochs"].default
TERMINAL_RUN_STATUSES = frozenset(
    {RunStatus.succeeded, RunStatus.failed, RunStatus.cancelled, RunStatus.dry_run}
)


class JobLive(BaseModel):
    """One job as a progress display needs it."""

    id: int
    position: int
    kind: str = "train"  # or "reconstruct": a pty-chi reconstruction
    engine: str | None = None
    split: str | None = None
    dose: float
    view: str
    gridsize: int
    status: JobStatus
    attempts: int
    worker: str | None = None
    epoch: int | None = None  # epoch in training (from 1) while running; epochs done after
    epochs_total: int
    step: int | None = None
    loss: float | None = None
    elapsed_s: float | None = None
    eta_s: float | None = None
    final_loss: float | None = None
    metrics: dict[str, float | None] | None = None
    # Judged against the worker's flat object (app.verdict); unjudged without one.
    beats_flat: bool | None = None
    learned: bool | None = None
    collapsed: bool = False
    verdict: str | None = None
    error: str | None = None
    cancel_requested: bool = False
    updated_at: datetime


class RunLive(BaseModel):
    """A run's status, counts and ETA, with every job's live state and the skipped views."""

    id: int
    status: RunStatus
    terminal: bool
    counts: dict[str, int]
    job_count: int
    skipped_count: int
    epochs_total: int
    eta_s: float | None
    mean_job_s: float | None
    jobs: list[JobLive]
    skipped_views: list[SkipEventPublic]


def read_run_live(*, session: Session, run_id: int, now: datetime | None = None) -> RunLive:
    """The run's live state in three queries; NotFound for an unknown id."""
    run = session.get(Run, run_id)
    if run is None:
        raise NotFound("run", run_id)
    now = now or datetime.now(UTC)
    jobs = list(session.exec(select(Job).where(Job.run_id == run_id).order_by(col(Job.position))))
    skip_rows = session.exec(
        select(SkipEvent).where(SkipEvent.run_id == run_id).order_by(col(SkipEvent.id))
    )
    skips = [SkipEventPublic.model_validate(skip) for skip in skip_rows]
    total = epochs_total(run)
    mean_s = _mean_duration_s(jobs)
    live = [job_live(job, _reported_epochs(job) or total, mean_s, now) for job in jobs]
    counts = Counter(job.status for job in jobs)
    status = derive_run_status(list(counts))
    return RunLive(
        id=run_id,
        status=status,
        terminal=status in TERMINAL_RUN_STATUSES,
        counts={s.value: n for s, n in sorted(counts.items())},
        job_count=len(jobs),
        skipped_count=len(skips),
        epochs_total=total,
        eta_s=run_eta_s(live, mean_s),
        mean_job_s=_round(mean_s),
        jobs=live,
        skipped_views=skips,
    )


def read_run_change_key(*, session: Session, run_id: int) -> tuple[Any, ...]:
    """A cheap fingerprint of the run's jobs: it changes whenever any job row changes."""
    row = session.exec(
        select(func.count(), func.max(Job.updated_at)).where(Job.run_id == run_id)
    ).one()
    return tuple(row)


def epochs_total(run: Run) -> int:
    """The epochs each job of the run trains for."""
    epochs = (run.training or {}).get("epochs", DEFAULT_EPOCHS)
    return int(epochs) if isinstance(epochs, int | float) else int(DEFAULT_EPOCHS)


def job_live(job: Job, total: int, mean_s: float | None, now: datetime) -> JobLive:
    """One job's live state; `mean_s` is the run's mean job duration, when known."""
    assert job.id is not None
    result = job.result or {}
    elapsed = _elapsed_s(job, now)
    metrics = result.get("metrics")
    judged = verdict(result)
    return JobLive(
        id=job.id,
        position=job.position,
        kind=job.kind,
        engine=job.engine,
        split=job.split,
        dose=job.dose,
        view=job.view,
        gridsize=job.gridsize,
        status=job.status,
        attempts=job.attempts,
        worker=job.lease_owner,
        epoch=_epoch(job, result),
        epochs_total=total,
        step=job.progress_step,
        loss=finite_number(job.progress_loss),
        elapsed_s=_round(elapsed),
        eta_s=_round(job_eta_s(job, total, elapsed, mean_s)),
        final_loss=finite_number(result.get("final_loss")),
        metrics={k: finite_number(v) for k, v in metrics.items()}
        if isinstance(metrics, dict)
        else None,
        **judged,
        verdict=verdict_label(judged),
        error=job.error.strip().splitlines()[-1][:300] if job.error else None,
        cancel_requested=job.cancel_requested,
        updated_at=as_utc(job.updated_at),
    )


def _reported_epochs(job: Job) -> int | None:
    """The total the worker reported with its progress (None before the first report)."""
    epochs = getattr(job, "progress_epochs", None)  # a column newer than some databases
    return epochs if isinstance(epochs, int) and epochs > 0 else None


def _epoch(job: Job, result: dict[str, Any]) -> int | None:
    if job.status != JobStatus.running:
        done = result.get("epochs_completed")
        if isinstance(done, int):
            return done
    return job.progress_epoch


def job_eta_s(job: Job, total: int, elapsed: float | None, mean_s: float | None) -> float | None:
    """Seconds until a job ends: 0 once ended; a queued job takes the run's mean."""
    if job.status in TERMINAL_STATUSES:
        return 0.0
    if job.status == JobStatus.queued:
        return mean_s
    if elapsed is None:
        return None
    done_epochs = (job.progress_epoch or 1) - 1  # the epoch in training is not done yet
    if done_epochs > 0 and total > 0:
        share = min(done_epochs / total, 1.0)
        return max(elapsed * (1.0 - share) / share, 0.0)
    if mean_s is not None:
        return max(mean_s - elapsed, 0.0)
    return None


def run_eta_s(jobs: list[JobLive], mean_s: float | None) -> float | None:
    """Seconds until the run ends: the work left, spread over the jobs running now."""
    active = [job for job in jobs if job.status in (JobStatus.queued, JobStatus.running)]
    if not active:
        return 0.0
    if any(job.eta_s is None for job in active):
        return None
    running = [job for job in active if job.status == JobStatus.running]
    work = sum(job.eta_s or 0.0 for job in active)
    longest = max((job.eta_s or 0.0 for job in running), default=0.0)
    return _round(max(longest, work / max(len(running), 1)))


def _mean_duration_s(jobs: list[Job]) -> float | None:
    durations = [
        (as_utc(job.finished_at) - as_utc(job.started_at)).total_seconds()
        for job in jobs
        if job.status == JobStatus.succeeded and job.started_at and job.finished_at
    ]
    return sum(durations) / len(durations) if durations else None


def _elapsed_s(job: Job, now: datetime) -> float | None:
    if job.started_at is None:
        return None
    end = as_utc(job.finished_at) if job.finished_at and job.status != JobStatus.running else now
    return max((end - as_utc(job.started_at)).total_seconds(), 0.0)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
