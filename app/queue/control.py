"""Cancel and retry from the API: these calls run in the caller's session; the caller commits."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import CursorResult, bindparam, select, update
from sqlmodel import Session

from app.errors import InvalidTransition, NotFound
from app.models import Job, JobStatus, Run, utcnow
from app.queue.statements import JOB, LEASE_CLEARED, switch_status

_ASK_TO_CANCEL = (
    update(JOB)
    .where(JOB.c.id == bindparam("b_id"), JOB.c.status == JobStatus.running)
    .values(cancel_requested=True)
)


def cancel_job(*, session: Session, job_id: int) -> Job:
    """Cancel a queued job now; ask a running job to stop (its worker confirms)."""
    conn = session.connection()
    now = utcnow()
    if not switch_status(
        conn, job_id, JobStatus.queued, JobStatus.cancelled, values={"finished_at": now}
    ):
        asked = conn.execute(_ASK_TO_CANCEL, {"b_id": job_id, "updated_at": now})
        if cast(CursorResult[Any], asked).rowcount != 1:
            _refuse_cancel(session, job_id)
    job = session.get(Job, job_id, populate_existing=True)
    if job is None:
        raise NotFound("job", job_id)
    return job


def _refuse_cancel(session: Session, job_id: int) -> None:
    status = session.connection().execute(select(JOB.c.status).where(JOB.c.id == job_id))
    current = status.scalar_one_or_none()
    if current is None:
        raise NotFound("job", job_id)
    if current != JobStatus.cancelled:  # cancelling a cancelled job changes nothing
        raise InvalidTransition(f"job {job_id} is {current}; only queued or running jobs cancel")


def cancel_run(*, session: Session, run_id: int) -> list[Job]:
    """Cancel the run's queued jobs and ask its running ones to stop; returns those jobs."""
    _require_run(session, run_id)
    active = session.connection().execute(
        select(JOB.c.id)
        .where(JOB.c.run_id == run_id, JOB.c.status.in_([JobStatus.queued, JobStatus.running]))
        .order_by(JOB.c.position)
    )
    jobs: list[Job] = []
    for job_id in active.scalars().all():
        try:
            jobs.append(cancel_job(session=session, job_id=job_id))
        except InvalidTransition:
            continue  # it ended between the query and the cancel: nothing left to stop
    return jobs


_RETRY_VALUES: dict[str, Any] = {
    "failures": 0,
    "cancel_requested": False,
    "error": None,
    "result": None,
    "finished_at": None,
    **LEASE_CLEARED,
}
_RETRYABLE = (JobStatus.failed, JobStatus.cancelled)


def retry_run(*, session: Session, run_id: int) -> list[Job]:
    """Requeue the run's failed and cancelled jobs with a fresh attempt budget."""
    _require_run(session, run_id)
    conn = session.connection()
    rows = conn.execute(
        select(JOB.c.id, JOB.c.status).where(JOB.c.run_id == run_id, JOB.c.status.in_(_RETRYABLE))
    ).all()
    retried = [
        row.id
        for row in rows
        if switch_status(conn, row.id, row.status, JobStatus.queued, values=_RETRY_VALUES)
    ]
    jobs = [session.get(Job, job_id, populate_existing=True) for job_id in retried]
    return [job for job in jobs if job is not None]


def retry_job(*, session: Session, job_id: int) -> Job:
    """Requeue one failed or cancelled job with a fresh attempt budget."""
    conn = session.connection()
    status = conn.execute(select(JOB.c.status).where(JOB.c.id == job_id)).scalar_one_or_none()
    if status is None:
        raise NotFound("job", job_id)
    if status not in _RETRYABLE or not switch_status(
        conn, job_id, JobStatus(status), JobStatus.queued, values=_RETRY_VALUES
    ):
        raise InvalidTransition(f"job {job_id} is {status}; only failed or cancelled jobs retry")
    job = session.get(Job, job_id, populate_existing=True)
    if job is None:
        raise NotFound("job", job_id)
    return job


def _require_run(session: Session, run_id: int) -> None:
    if session.get(Run, run_id) is None:
        raise NotFound("run", run_id)
