"""Live workers, as the queue sees them: the owners of running jobs' leases.

A worker that holds a job heartbeats it (every `heartbeat_s`), and each heartbeat stamps the
job's `updated_at`; so a worker's last heartbeat is the newest `updated_at` among the jobs it
holds. An idle worker holds no lease and does not show here; there is no worker table.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel
from sqlmodel import Session, col, select

from app.core.files import as_utc
from app.models import HealthPublic, Job, JobStatus


class LiveWorker(BaseModel):
    name: str
    jobs: list[int]
    last_heartbeat: datetime
    seconds_since_heartbeat: float
    lease_expires_at: datetime | None
    lease_expired: bool


class HealthLive(HealthPublic):
    """Health, with the workers that hold a job now."""

    workers: list[LiveWorker]
    live_worker_count: int


def live_workers(*, session: Session, now: datetime | None = None) -> list[LiveWorker]:
    """Every lease owner of a running job, with its last heartbeat; newest first."""
    now = now or datetime.now(UTC)
    rows = session.exec(
        select(Job.id, Job.lease_owner, Job.updated_at, Job.lease_expires_at).where(
            Job.status == JobStatus.running, col(Job.lease_owner).is_not(None)
        )
    ).all()
    held: dict[str, list[tuple[int, datetime, datetime | None]]] = {}
    for job_id, owner, updated_at, expires_at in rows:
        if owner is not None and job_id is not None:
            entry = (job_id, as_utc(updated_at), _aware_or_none(expires_at))
            held.setdefault(owner, []).append(entry)
    workers = []
    for name, jobs in held.items():
        beat = max(updated for _, updated, _ in jobs)
        expiries = [expires for _, _, expires in jobs if expires is not None]
        expires_at = max(expiries) if expiries else None
        workers.append(
            LiveWorker(
                name=name,
                jobs=sorted(job_id for job_id, _, _ in jobs),
                last_heartbeat=beat,
                seconds_since_heartbeat=round(max((now - beat).total_seconds(), 0.0), 1),
                lease_expires_at=expires_at,
                lease_expired=expires_at is not None and expires_at < now,
            )
        )
    return sorted(workers, key=lambda worker: worker.last_heartbeat, reverse=True)


def _aware_or_none(moment: datetime | None) -> datetime | None:
    return None if moment is None else as_utc(moment)


def check_health_live(*, session: Session, version: str) -> HealthLive:
    """The database answers; and which workers hold jobs, with their last heartbeats."""
    from app.crud import check_health

    health = check_health(session=session, version=version)
    workers = live_workers(session=session)
    return HealthLive(**health.model_dump(), workers=workers, live_worker_count=len(workers))
