"""The reaper: running jobs whose lease expired go back to the queue (or fail, or cancel)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, select

from app.models import AttemptOutcome, JobStatus, utcnow
from app.queue.statements import JOB, LEASE_CLEARED, end_attempt, switch_status
from app.queue.transitions import status_after_failure

_EXPIRED = (
    select(JOB)
    .where(JOB.c.status == JobStatus.running, JOB.c.lease_expires_at < bindparam("b_now"))
    .with_for_update(skip_locked=True)
)


def requeue_expired(*, engine: Engine, now: datetime | None = None) -> list[int]:
    """The reaper: requeue (or fail, or cancel) running jobs whose lease expired."""
    now = now or utcnow()
    affected: set[int] = set()
    with engine.begin() as conn:
        for row in conn.execute(_EXPIRED, {"b_now": now}).all():
            if _reap_one(conn, row):
                affected.add(row.run_id)
    return sorted(affected)


def _reap_one(conn: Connection, row: Any) -> bool:
    expired_at = row.lease_expires_at.isoformat(timespec="seconds")
    reason = f"lease expired at {expired_at} without a heartbeat from worker {row.lease_owner}"
    failures = row.failures + 1
    target = status_after_failure(failures, row.max_attempts, row.cancel_requested)
    values: dict[str, Any] = {"failures": failures, "error": reason, **LEASE_CLEARED}
    if target is not JobStatus.queued:
        values["finished_at"] = utcnow()
    done = switch_status(
        conn, row.id, JobStatus.running, target, token=row.lease_token, values=values
    )
    if done:
        end_attempt(conn, row.id, row.lease_token, AttemptOutcome.expired, reason)
    return done
