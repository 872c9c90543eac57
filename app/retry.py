"""Retry one job from the API: requeue it, commit, and rewrite the run's manifest."""

from __future__ import annotations

import logging

from sqlmodel import Session

from app import crud, manifest, queue
from app.models import JobPublic

logger = logging.getLogger(__name__)


def retry_job(*, session: Session, job_id: int) -> JobPublic:
    """Requeue a failed or cancelled job with a fresh attempt budget (409 otherwise)."""
    job = queue.retry_job(session=session, job_id=job_id)
    run_id = job.run_id
    session.commit()
    try:
        manifest.write_manifest(session=session, run_id=run_id)
    except OSError:
        logger.exception("could not write the manifest", extra={"run_id": run_id})
    return crud.read_job(session=session, job_id=job_id)
