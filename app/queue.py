"""The job queue: the only code that changes a job's status.

Every change is the conditional UPDATE of `_switch` (WHERE status = source), checked
against the table of allowed transitions; a write from a worker also names the job's lease
token, so a write that matches no row means the job was taken away (lease expired and
reaped, cancelled). Each worker call is one short write transaction (`BEGIN IMMEDIATE` on
SQLite, row locks with `SKIP LOCKED` on PostgreSQL); no transaction is held while a job
trains.
"""

from __future__ import annotations

import uuid
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Connection, CursorResult, Engine, Table, bindparam, insert, select, update
from sqlalchemy.engine import Dialect
from sqlmodel import Session

from app.core.db import Prepared, driver_transaction
from app.models import AttemptOutcome, Job, JobStatus, Run, metadata, utcnow

JOB: Table = metadata.tables["job"]
ATTEMPT: Table = metadata.tables["attempt"]
RUN: Table = metadata.tables["run"]

ALLOWED_TRANSITIONS: Mapping[JobStatus, frozenset[JobStatus]] = {
    JobStatus.queued: frozenset({JobStatus.running, JobStatus.cancelled}),
    JobStatus.running: frozenset(
        {JobStatus.succeeded, JobStatus.queued, JobStatus.failed, JobStatus.cancelled}
    ),
    JobStatus.failed: frozenset({JobStatus.queued}),  # retry_run only
    JobStatus.cancelled: frozenset({JobStatus.queued}),  # retry_run only
    JobStatus.succeeded: frozenset(),
    JobStatus.dry_run: frozenset(),
}
ERROR_MAX_CHARS = 8_000
_LEASE_CLEARED = {"lease_token": None, "lease_owner": None, "lease_expires_at": None}


class QueueError(Exception):
    """Base of the queue's errors; the API maps them to HTTP answers in one place."""


class JobNotFound(QueueError):
    """No job has this id."""

    def __init__(self, job_id: int) -> None:
        self.job_id = job_id
        super().__init__(f"job {job_id} not found")


class RunNotFound(QueueError):
    """No run has this id."""

    def __init__(self, run_id: int) -> None:
        self.run_id = run_id
        super().__init__(f"run {run_id} not found")


class InvalidTransition(QueueError):
    """The job's status does not allow the requested change."""


@dataclass(frozen=True)
class Progress:
    epoch: int
    step: int
    loss: float


@dataclass(frozen=True)
class HeartbeatReply:
    lost: bool
    cancel_requested: bool = False


@dataclass(frozen=True)
class ClaimedJob:
    """Everything an executor needs to run one attempt of a job (picklable)."""

    job_id: int
    run_id: int
    position: int
    lease_token: str
    attempt: int
    worker: str
    dose: float
    view: str
    gridsize: int
    train_data_path: str
    test_data_path: str
    log_path: str
    artifact_dir: str
    training: dict[str, Any] = field(default_factory=dict)
    execution: dict[str, Any] = field(default_factory=dict)
    design: dict[str, Any] = field(default_factory=dict)


def check_transition(source: JobStatus, target: JobStatus) -> None:
    """Raise InvalidTransition unless the table allows source → target."""
    if target not in ALLOWED_TRANSITIONS[JobStatus(source)]:
        raise InvalidTransition(f"a {source} job cannot become {target}")


# Statements are built once: building and hashing a statement per call costs more than
# running it on SQLite. Values that vary by call site are passed as execute() parameters
# named after their columns; `b_*` names are the WHERE clause's bound values. The worker's
# per-job statements (claim, heartbeat, complete) are also compiled once per engine and run
# on the driver's cursor (`_HotPath`); the rarer calls go through `Connection.execute`.
_SWITCH = update(JOB).where(JOB.c.id == bindparam("b_id"), JOB.c.status == bindparam("b_from"))
_SWITCH_FENCED = _SWITCH.where(JOB.c.lease_token == bindparam("b_token"))
_END_ATTEMPT = update(ATTEMPT).where(
    ATTEMPT.c.job_id == bindparam("b_job"), ATTEMPT.c.lease_token == bindparam("b_token")
)
_OLDEST_QUEUED = (
    select(JOB.c.id)
    .where(JOB.c.status == JobStatus.queued)
    .order_by(JOB.c.run_id, JOB.c.position, JOB.c.id)
    .limit(1)
    .with_for_update(skip_locked=True)  # PostgreSQL; SQLite already holds the write lock
    .scalar_subquery()
)
_CLAIMED = (
    JOB.c.id,
    JOB.c.run_id,
    JOB.c.position,
    JOB.c.attempts,
    JOB.c.dose,
    JOB.c.view,
    JOB.c.gridsize,
    JOB.c.train_data_path,
    JOB.c.test_data_path,
    JOB.c.log_path,
    JOB.c.artifact_dir,
)
_CLAIM = (
    update(JOB)
    .where(JOB.c.id == _OLDEST_QUEUED, JOB.c.status == JobStatus.queued)
    .values(attempts=JOB.c.attempts + 1)
    .returning(*_CLAIMED)
)
_CLAIMED_NAMES = tuple(column.name for column in _CLAIMED)
_INSERT_ATTEMPT = insert(ATTEMPT)
_RUN_OPTIONS = select(RUN.c.training, RUN.c.execution, RUN.c.design).where(
    RUN.c.id == bindparam("b_run")
)
_RunOptions = tuple[dict[str, Any], dict[str, Any], dict[str, Any]]
_RUN_OPTIONS_CACHE: weakref.WeakKeyDictionary[Engine, dict[int, _RunOptions]] = (
    weakref.WeakKeyDictionary()
)
_RUN_OPTIONS_CACHE_SIZE = 256
_HEARTBEAT = (
    update(JOB)
    .where(
        JOB.c.id == bindparam("b_id"),
        JOB.c.lease_token == bindparam("b_token"),
        JOB.c.status == JobStatus.running,
    )
    .returning(JOB.c.cancel_requested)
)
_HELD = (
    select(JOB.c.failures, JOB.c.max_attempts, JOB.c.cancel_requested)
    .where(
        JOB.c.id == bindparam("b_id"),
        JOB.c.lease_token == bindparam("b_token"),
        JOB.c.status == JobStatus.running,
    )
    .with_for_update()
)

_ASK_TO_CANCEL = (
    update(JOB)
    .where(JOB.c.id == bindparam("b_id"), JOB.c.status == JobStatus.running)
    .values(cancel_requested=True)
)
_EXPIRED = (
    select(JOB)
    .where(JOB.c.status == JobStatus.running, JOB.c.lease_expires_at < bindparam("b_now"))
    .with_for_update(skip_locked=True)
)


def _switch(
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
        result = conn.execute(_SWITCH, params)
    else:
        result = conn.execute(_SWITCH_FENCED, {**params, "b_token": token})
    return cast(CursorResult[Any], result).rowcount == 1


def _end_attempt(
    conn: Connection, job_id: int, token: str, outcome: AttemptOutcome, error: str | None
) -> None:
    conn.execute(
        _END_ATTEMPT,
        {
            "b_job": job_id,
            "b_token": token,
            "outcome": outcome,
            "ended_at": utcnow(),
            "error": _clip(error),
        },
    )


def _clip(text: str | None) -> str | None:
    if text is None or len(text) <= ERROR_MAX_CHARS:
        return text
    return "…" + text[-ERROR_MAX_CHARS:]  # the end of a traceback says the most


# The columns each hot statement sets (its SET clause is compiled for exactly these).
_PROGRESS_KEYS = ("progress_epoch", "progress_step", "progress_loss")
_CLAIM_KEYS = (
    *("status", "lease_token", "lease_owner", "lease_expires_at", "started_at", "updated_at"),
    *_PROGRESS_KEYS,
)
_ATTEMPT_KEYS = ("job_id", "number", "worker", "lease_token", "started_at", "outcome")
_BEAT_KEYS = ("lease_expires_at", "updated_at")
_COMPLETE_KEYS = ("status", "result", "error", "finished_at", "updated_at", *_LEASE_CLEARED)


class _HotPath:
    """The statements a worker runs per job, compiled once for one engine's dialect.

    They run through `driver_transaction`, which keeps the write lock for the SQL alone:
    with several workers on one SQLite file, time spent inside the lock is what they wait for.
    """

    def __init__(self, dialect: Dialect) -> None:
        self.claim = Prepared(_CLAIM, dialect, _CLAIM_KEYS)
        self.insert_attempt = Prepared(_INSERT_ATTEMPT, dialect, _ATTEMPT_KEYS)
        self.end_attempt = Prepared(_END_ATTEMPT, dialect, ("outcome", "ended_at", "error"))
        self.heartbeat = {
            False: Prepared(_HEARTBEAT, dialect, _BEAT_KEYS),
            True: Prepared(_HEARTBEAT, dialect, (*_BEAT_KEYS, *_PROGRESS_KEYS)),
        }
        self.complete = {
            False: Prepared(_SWITCH_FENCED, dialect, _COMPLETE_KEYS),
            True: Prepared(_SWITCH_FENCED, dialect, (*_COMPLETE_KEYS, *_PROGRESS_KEYS)),
        }


_HOT_PATHS: weakref.WeakKeyDictionary[Engine, _HotPath] = weakref.WeakKeyDictionary()


def _hot_path(engine: Engine) -> _HotPath:
    hot = _HOT_PATHS.get(engine)
    if hot is None:
        hot = _HOT_PATHS[engine] = _HotPath(engine.dialect)
    return hot


def warm_up(engine: Engine) -> None:
    """Compile the worker's statements and open a pooled connection, before the first claim."""
    _hot_path(engine)
    engine.raw_connection().close()


def _run_options(engine: Engine, run_id: int) -> _RunOptions:
    """A run's training/execution/design dicts; cached, as a run's options never change."""
    cache = _RUN_OPTIONS_CACHE.setdefault(engine, {})
    options = cache.get(run_id)
    if options is None:
        with engine.connect() as conn:
            row = conn.execute(_RUN_OPTIONS, {"b_run": run_id}).one()
        options = (row.training or {}, row.execution or {}, row.design or {})
        if len(cache) >= _RUN_OPTIONS_CACHE_SIZE:
            cache.clear()
        cache[run_id] = options
    return options


def claim_next_job(*, engine: Engine, worker: str, lease_s: float) -> ClaimedJob | None:
    """Lease the oldest queued job (run, then position) to `worker`; None when none is queued."""
    check_transition(JobStatus.queued, JobStatus.running)
    hot = _hot_path(engine)
    now = utcnow()
    token = uuid.uuid4().hex
    lease = {
        "status": JobStatus.running,
        "lease_token": token,
        "lease_owner": worker,
        "lease_expires_at": now + timedelta(seconds=lease_s),
        "started_at": now,
        "updated_at": now,
        # progress is the current attempt's
        **dict.fromkeys(_PROGRESS_KEYS),
    }
    attempt = {
        "worker": worker,
        "lease_token": token,
        "started_at": now,
        "outcome": AttemptOutcome.running,
    }
    claim = hot.claim.bind(lease)
    with driver_transaction(engine) as transaction:
        rows = transaction.execute(claim).fetchall()
        if not rows:
            return None
        job = dict(zip(_CLAIMED_NAMES, rows[0], strict=True))
        attempt |= {"job_id": job["id"], "number": job["attempts"]}
        transaction.execute(hot.insert_attempt.bind(attempt))
    training, execution, design = _run_options(engine, job["run_id"])
    return ClaimedJob(
        job_id=job["id"],
        run_id=job["run_id"],
        position=job["position"],
        lease_token=token,
        attempt=job["attempts"],
        worker=worker,
        dose=job["dose"],
        view=job["view"],
        gridsize=job["gridsize"],
        train_data_path=job["train_data_path"],
        test_data_path=job["test_data_path"],
        log_path=job["log_path"],
        artifact_dir=job["artifact_dir"],
        training=dict(training),
        execution=dict(execution),
        design=dict(design),
    )


def heartbeat(
    *,
    engine: Engine,
    job_id: int,
    lease_token: str,
    lease_s: float,
    progress: Progress | None = None,
) -> HeartbeatReply:
    """Extend the lease and store progress; `lost` when the job is no longer ours."""
    now = utcnow()
    params: dict[str, Any] = {
        "b_id": job_id,
        "b_token": lease_token,
        "lease_expires_at": now + timedelta(seconds=lease_s),
        "updated_at": now,
    }
    params |= _progress_values(progress)
    beat = _hot_path(engine).heartbeat[progress is not None].bind(params)
    with driver_transaction(engine) as transaction:
        rows = transaction.execute(beat).fetchall()
    if not rows:
        return HeartbeatReply(lost=True)
    return HeartbeatReply(lost=False, cancel_requested=bool(rows[0][0]))


def _progress_values(progress: Progress | None) -> dict[str, Any]:
    if progress is None:
        return {}
    return {
        "progress_epoch": progress.epoch,
        "progress_step": progress.step,
        "progress_loss": progress.loss,
    }


def complete_job(
    *,
    engine: Engine,
    job_id: int,
    lease_token: str,
    result: dict[str, Any],
    progress: Progress | None = None,
) -> bool:
    """Record the attempt's result: running → succeeded. False when the lease was lost."""
    check_transition(JobStatus.running, JobStatus.succeeded)
    hot = _hot_path(engine)
    now = utcnow()
    fence = {"b_id": job_id, "b_from": JobStatus.running, "b_token": lease_token}
    values = {"status": JobStatus.succeeded, "result": result, "error": None, "finished_at": now}
    values |= {"updated_at": now, **_LEASE_CLEARED, **_progress_values(progress)}
    complete = hot.complete[progress is not None].bind(fence | values)
    ended = {"outcome": AttemptOutcome.succeeded, "ended_at": now, "error": None}
    end = hot.end_attempt.bind({"b_job": job_id, "b_token": lease_token, **ended})
    with driver_transaction(engine) as transaction:
        done = transaction.execute(complete).rowcount == 1
        if done:
            transaction.execute(end)
    return done


def fail_attempt(*, engine: Engine, job_id: int, lease_token: str, error: str) -> bool:
    """Count a failed attempt: requeue, or fail after max_attempts (cancel wins over both)."""
    with engine.begin() as conn:
        row = conn.execute(_HELD, {"b_id": job_id, "b_token": lease_token}).first()
        if row is None:
            return False
        failures = row.failures + 1
        target = _after_failure(failures, row.max_attempts, row.cancel_requested)
        values = {"failures": failures, "error": _clip(error), **_LEASE_CLEARED}
        if target is not JobStatus.queued:
            values["finished_at"] = utcnow()
        done = _switch(conn, job_id, JobStatus.running, target, token=lease_token, values=values)
        if done:
            _end_attempt(conn, job_id, lease_token, AttemptOutcome.failed, error)
    return done


def _after_failure(failures: int, max_attempts: int, cancel_requested: bool) -> JobStatus:
    if cancel_requested:
        return JobStatus.cancelled  # a cancelled job is never retried automatically
    return JobStatus.queued if failures < max_attempts else JobStatus.failed


def release_job(*, engine: Engine, job_id: int, lease_token: str, reason: str) -> bool:
    """Give the job back to the queue without counting the attempt (graceful shutdown)."""
    with engine.begin() as conn:
        held = conn.execute(_HELD, {"b_id": job_id, "b_token": lease_token}).first()
        target = JobStatus.cancelled if held and held.cancel_requested else JobStatus.queued
        values: dict[str, Any] = dict(_LEASE_CLEARED)
        if target is JobStatus.cancelled:
            values["finished_at"] = utcnow()
        done = _switch(conn, job_id, JobStatus.running, target, token=lease_token, values=values)
        if done:
            _end_attempt(conn, job_id, lease_token, AttemptOutcome.interrupted, reason)
    return done


def confirm_cancelled(*, engine: Engine, job_id: int, lease_token: str) -> bool:
    """The worker stopped a job whose cancel was requested: running → cancelled."""
    values = {"finished_at": utcnow(), **_LEASE_CLEARED}
    with engine.begin() as conn:
        held = conn.execute(_HELD, {"b_id": job_id, "b_token": lease_token}).first()
        if held is None or not held.cancel_requested:
            return False
        done = _switch(
            conn, job_id, JobStatus.running, JobStatus.cancelled, token=lease_token, values=values
        )
        if done:
            _end_attempt(conn, job_id, lease_token, AttemptOutcome.cancelled, "cancel requested")
    return done


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
    target = _after_failure(failures, row.max_attempts, row.cancel_requested)
    values: dict[str, Any] = {"failures": failures, "error": reason, **_LEASE_CLEARED}
    if target is not JobStatus.queued:
        values["finished_at"] = utcnow()
    done = _switch(conn, row.id, JobStatus.running, target, token=row.lease_token, values=values)
    if done:
        _end_attempt(conn, row.id, row.lease_token, AttemptOutcome.expired, reason)
    return done


# --- Calls from the API: they run in the caller's session; the caller commits. ---


def cancel_job(*, session: Session, job_id: int) -> Job:
    """Cancel a queued job now; ask a running job to stop (its worker confirms)."""
    conn = session.connection()
    now = utcnow()
    if not _switch(
        conn, job_id, JobStatus.queued, JobStatus.cancelled, values={"finished_at": now}
    ):
        asked = conn.execute(_ASK_TO_CANCEL, {"b_id": job_id, "updated_at": now})
        if cast(CursorResult[Any], asked).rowcount != 1:
            _refuse_cancel(session, job_id)
    job = session.get(Job, job_id, populate_existing=True)
    if job is None:
        raise JobNotFound(job_id)
    return job


def _refuse_cancel(session: Session, job_id: int) -> None:
    status = session.connection().execute(select(JOB.c.status).where(JOB.c.id == job_id))
    current = status.scalar_one_or_none()
    if current is None:
        raise JobNotFound(job_id)
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


def retry_run(*, session: Session, run_id: int) -> list[Job]:
    """Requeue the run's failed and cancelled jobs with a fresh attempt budget."""
    _require_run(session, run_id)
    conn = session.connection()
    rows = conn.execute(
        select(JOB.c.id, JOB.c.status).where(
            JOB.c.run_id == run_id, JOB.c.status.in_([JobStatus.failed, JobStatus.cancelled])
        )
    ).all()
    values: dict[str, Any] = {
        "failures": 0,
        "cancel_requested": False,
        "error": None,
        "result": None,
        "finished_at": None,
        **_LEASE_CLEARED,
    }
    retried = [
        row.id for row in rows if _switch(conn, row.id, row.status, JobStatus.queued, values=values)
    ]
    jobs = [session.get(Job, job_id, populate_existing=True) for job_id in retried]
    return [job for job in jobs if job is not None]


def _require_run(session: Session, run_id: int) -> None:
    if session.get(Run, run_id) is None:
        raise RunNotFound(run_id)
