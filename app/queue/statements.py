"""The queue's tables and prebuilt statements, the one status change (`switch_status`),
and the attempt bookkeeping every caller shares."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from sqlalchemy import Connection, CursorResult, Table, bindparam, update

from app.models import AttemptOutcome, JobStatus, metadata, utcnow
from app.queue.transitions import check_transition

JOB: Table = metadata.tables["job"]
ATTEMPT: Table = metadata.tables["attempt"]
RUN: Table = metadata.tables["run"]

ERROR_MAX_CHARS = 8_000
LEASE_CLEARED = {"lease_token": None, "lease_owner": None, "lease_expires_at": None}

# Statements are built once: building and hashing a statement per call costs more than
# running it on SQLite. Values that vary by call site are passed as execute() parameters
# named after their columns; `b_*` names are the WHERE clause's bound values. The worker's
# per-job statements (claim, heartbeat, complete) are also compiled once per engine and run
# on the driver's cursor (`HotPath`); the rarer calls go through `Connection.execute`.
SWITCH = update(JOB).where(JOB.c.id == bindparam("b_id"), JOB.c.status == bindparam("b_from"))
SWITCH_FENCED = SWITCH.where(JOB.c.lease_token == bindparam("b_token"))
END_ATTEMPT = update(ATTEMPT).where(
    ATTEMPT.c.job_id == bindparam("b_job"), ATTEMPT.c.lease_token == bindparam("b_token")
)


def switch_status(
    conn: Connection,
    job_id: int,
    source: JobStatus,
    target: JobStatus,
    *,
    token: str | None = None,
    values: Mapping[str, Any] | None = None,
) -> bool:
    """The one status change: UPDATE … WHERE status = source [AND lease_token = token]."""
    check_transition(source, target)
    params = {"b_id": job_id, "b_from": source, "status": target, "updated_at": utcnow()}
    params.update(values or {})
    if token is None:
        result = conn.execute(SWITCH, params)
    else:
        result = conn.execute(SWITCH_FENCED, {**params, "b_token": token})
    return cast(CursorResult[Any], result).rowcount == 1


def end_attempt(
    conn: Connection, job_id: int, token: str, outcome: AttemptOutcome, error: str | None
) -> None:
    conn.execute(
        END_ATTEMPT,
        {
            "b_job": job_id,
            "b_token": token,
            "outcome": outcome,
            "ended_at": utcnow(),
            "error": clip_error(error),
        },
    )


def clip_error(text: str | None) -> str | None:
    if text is None or len(text) <= ERROR_MAX_CHARS:
        return text
    return "…" + text[-ERROR_MAX_CHARS:]  # the end of a traceback says the most
