"""Retry one job from the API: requeue it, commit, and rewrite the run's manifest."""

from __future__ import annotations

from pathlib import Path

from sqlmodel import Session

from app import crud, manifest, queue
from app.models import JobPublic


def retry_job(*, session: Session, job_id: int, data_root: Path | None) -> JobPublic:
    """Requeue a failed or cancelled job with a fresh attempt budget (409 otherwise)."""
    job = queue.retry_job(session=session, job_id=job_id)
    run_id = job.run_id
    session.commit()
    manifest.refresh_manifest(session=session, run_id=run_id, data_root=data_root)
    return crud.read_job(session=session, job_id=job_id)
