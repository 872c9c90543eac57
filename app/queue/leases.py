"""The worker's fenced writes: claim, heartbeat, complete, fail, release, confirm cancelled.

Each names the job's lease token, so a write that matches no row means the job was taken
away (lease expired and reaped, cancelled).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, bindparam, select

from app.core.db import driver_transaction
from app.models import AttemptOutcome, JobStatus, utcnow
from app.queue.hot_path import CLAIMED_NAMES, PROGRESS_KEYS, hot_path_for, run_options
from app.queue.statements import JOB, LEASE_CLEARED, clip_error, end_attempt, switch_status
from app.queue.transitions import check_transition, status_after_failure


@dataclass(frozen=True)
class Progress:
    """A running attempt's latest report: epoch (from 1) of epochs, step and loss."""

    epoch: int
    epochs: int
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
    kind: str = "train"  # or "reconstruct": a pty-chi reconstruction of one split
    engine: str | None = None
    split: str | None = None
    reconstruction: dict[str, Any] = field(default_factory=dict)


_HELD = (
    select(JOB.c.failures, JOB.c.max_attempts, JOB.c.cancel_requested)
    .where(
        JOB.c.id == bindparam("b_id"),
        JOB.c.lease_token == bindparam("b_token"),
        JOB.c.status == JobStatus.running,
    )
    .with_for_update()
)


def claim_next_job(
    *, engine: Engine, worker: str, lease_s: float, executor: str | None = None
) -> ClaimedJob | None:
    """Lease the oldest queued job (run, then position) to `worker`; None when none is queued.

    `executor` (local, slurm, ray) is recorded on the attempt.
    """
    check_transition(JobStatus.queued, JobStatus.running)
    hot = hot_path_for(engine)
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
        **dict.fromkeys(PROGRESS_KEYS),
    }
    attempt = {
        "worker": worker,
        "lease_token": token,
        "started_at": now,
        "outcome": AttemptOutcome.running,
        "executor": executor,
    }
    claim = hot.claim.bind(lease)
    with driver_transaction(engine) as transaction:
        rows = transaction.execute(claim).fetchall()
        if not rows:
            return None
        job = dict(zip(CLAIMED_NAMES, rows[0], strict=True))
        attempt |= {"job_id": job["id"], "number": job["attempts"]}
        transaction.execute(hot.insert_attempt.bind(attempt))
    training, execution, design, reconstruction = run_options(engine, job["run_id"])
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
        kind=job["kind"],
        engine=job["engine"],
        split=job["split"],
        reconstruction=dict(reconstruction),
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
    beat = hot_path_for(engine).heartbeat[progress is not None].bind(params)
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
        "progress_epochs": progress.epochs,
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
    hot = hot_path_for(engine)
    now = utcnow()
    fence = {"b_id": job_id, "b_from": JobStatus.running, "b_token": lease_token}
    values = {"status": JobStatus.succeeded, "result": result, "error": None, "finished_at": now}
    values |= {"updated_at": now, **LEASE_CLEARED, **_progress_values(progress)}
    complete = hot.complete[progress is not None].bind(fence | values)
    ended = {"outcome": AttemptOutcome.succeeded, "ended_at": now, "error": None}
    end = hot.end_attempt.bind({"b_job": job_id, "b_token": lease_token, **ended})
    with driver_transaction(engine) as transaction:
        done = transaction.execute(complete).rowcount == 1
        if done:
            transaction.execute(end)
    return done


def fail_attempt(
    *, engine: Engine, job_id: int, lease_token: str, error: str, final: bool = False
) -> bool:
    """Count a failed attempt: requeue, or fail after max_attempts (cancel wins over both).

    `final`: another attempt would fail the same way (a broken data file), so the job fails
    now whatever attempts are left; `retry` runs it again once the input is fixed.
    """
    with engine.begin() as conn:
        row = conn.execute(_HELD, {"b_id": job_id, "b_token": lease_token}).first()
        if row is None:
            return False
        failures = row.failures + 1
        allowed = failures if final else row.max_attempts
        target = status_after_failure(failures, allowed, row.cancel_requested)
        if final:
            error = f"{error}\n\n(not retried: another attempt would fail the same way)"
        values = {"failures": failures, "error": clip_error(error), **LEASE_CLEARED}
        if target is not JobStatus.queued:
            values["finished_at"] = utcnow()
        done = switch_status(
            conn, job_id, JobStatus.running, target, token=lease_token, values=values
        )
        if done:
            end_attempt(conn, job_id, lease_token, AttemptOutcome.failed, error)
    return done


def release_job(*, engine: Engine, job_id: int, lease_token: str, reason: str) -> bool:
    """Give the job back to the queue without counting the attempt (graceful shutdown)."""
    with engine.begin() as conn:
        held = conn.execute(_HELD, {"b_id": job_id, "b_token": lease_token}).first()
        target = JobStatus.cancelled if held and held.cancel_requested else JobStatus.queued
        values: dict[str, Any] = dict(LEASE_CLEARED)
        if target is JobStatus.cancelled:
            values["finished_at"] = utcnow()
        done = switch_status(
            conn, job_id, JobStatus.running, target, token=lease_token, values=values
        )
        if done:
            end_attempt(conn, job_id, lease_token, AttemptOutcome.interrupted, reason)
    return done


def confirm_cancelled(
    *, engine: Engine, job_id: int, lease_token: str, result: dict[str, Any] | None = None
) -> bool:
    """The worker stopped a job whose cancel was requested: running → cancelled.

    `result` is what training had when it stopped (partial metrics, image); it is kept.
    """
    values: dict[str, Any] = {"finished_at": utcnow(), **LEASE_CLEARED}
    if result is not None:
        values["result"] = result
    with engine.begin() as conn:
        held = conn.execute(_HELD, {"b_id": job_id, "b_token": lease_token}).first()
        if held is None or not held.cancel_requested:
            return False
        done = switch_status(
            conn, job_id, JobStatus.running, JobStatus.cancelled, token=lease_token, values=values
        )
        if done:
            end_attempt(conn, job_id, lease_token, AttemptOutcome.cancelled, "cancel requested")
    return done
