"""Table rows → the API's *Public models."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from sqlmodel import Session, col, select

from app.manifest import MANIFEST_NAME
from app.models import (
    Attempt,
    AttemptPublic,
    Job,
    JobProgress,
    JobPublic,
    JobStatus,
    Run,
    RunPublic,
    RunStatus,
    derive_run_status,
)

PROGRESS_COLUMNS = {"progress_epoch", "progress_epochs", "progress_step", "progress_loss"}


def derive_status(counts: Counter[JobStatus]) -> RunStatus:
    """A run's status from its jobs' status counts."""
    return derive_run_status(list(counts))


def run_public(run: Run, counts: Counter[JobStatus], skipped: int) -> RunPublic:
    """A run with its derived status, job counts per status and skip count."""
    return RunPublic.model_validate(
        {
            **run.model_dump(),
            "status": derive_status(counts),
            "manifest_path": str(Path(run.artifact_root) / MANIFEST_NAME),
            "job_count": sum(counts.values()),
            "counts": {status.value: n for status, n in sorted(counts.items())},
            "skipped_count": skipped,
        }
    )


def jobs_public(session: Session, jobs: list[Job]) -> list[JobPublic]:
    """Jobs with their attempt histories, loaded in one query."""
    ids = [job.id for job in jobs]
    history: dict[int, list[AttemptPublic]] = {}
    query = select(Attempt).where(col(Attempt.job_id).in_(ids)).order_by(col(Attempt.number))
    for attempt in session.exec(query):
        history.setdefault(attempt.job_id, []).append(AttemptPublic.model_validate(attempt))
    return [job_public(job, history.get(job.id or 0, [])) for job in jobs]


def job_public(job: Job, history: list[AttemptPublic]) -> JobPublic:
    """One job, its progress columns gathered into `progress`."""
    fields = job.model_dump(exclude=PROGRESS_COLUMNS)
    progress = JobProgress(
        epoch=job.progress_epoch,
        epochs=job.progress_epochs,
        step=job.progress_step,
        loss=job.progress_loss,
    )
    executor = history[-1].executor if history else None
    return JobPublic.model_validate(
        {**fields, "progress": progress, "executor": executor, "attempt_history": history}
    )
