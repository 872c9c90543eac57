"""The queue's state machine on a fresh SQLite database: claims, fencing, reaper, cancel, retry."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, select, text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session, col

from app import queue
from app.core.db import make_engine
from app.errors import NotFound
from app.models import Attempt, AttemptOutcome, Job, JobStatus, metadata, utcnow
from tests.worker.fakes import insert_run

LEASE_S = 30.0


def claim(engine: Engine, worker: str = "w1") -> queue.ClaimedJob:
    job = queue.claim_next_job(engine=engine, worker=worker, lease_s=LEASE_S)
    assert job is not None
    return job


def api_session(engine: Engine) -> Session:
    """A session like the API's: objects stay readable after commit."""
    return Session(engine, expire_on_commit=False)


def read_job(engine: Engine, job_id: int) -> Job:
    with api_session(engine) as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job


def attempts_of(engine: Engine, job_id: int) -> list[Attempt]:
    with Session(engine) as session:
        query = select(Attempt).where(col(Attempt.job_id) == job_id).order_by(col(Attempt.number))
        return list(session.scalars(query))


def expire_leases(engine: Engine) -> list[int]:
    """Run the reaper as if every lease ran out."""
    return queue.requeue_expired(engine=engine, now=utcnow() + timedelta(seconds=LEASE_S + 1))


def test_claim_takes_oldest_queued_job_in_run_order(engine: Engine, tmp_path: Path) -> None:
    first_run = insert_run(engine, tmp_path, 2, training={"epochs": 3})
    insert_run(engine, tmp_path, 2)
    insert_run(engine, tmp_path, 1, status=JobStatus.dry_run)

    claimed = [claim(engine, worker=f"w{i}") for i in range(4)]

    assert [(c.run_id, c.position) for c in claimed] == [(1, 0), (1, 1), (2, 0), (2, 1)]
    assert queue.claim_next_job(engine=engine, worker="w9", lease_s=LEASE_S) is None
    first = claimed[0]
    assert first.run_id == first_run
    assert first.training == {"epochs": 3}
    assert first.design == {"neighbor_count": 7}
    assert first.attempt == 1
    job = read_job(engine, first.job_id)
    assert job.status == JobStatus.running
    assert job.lease_owner == "w0"
    assert job.lease_token == first.lease_token
    assert job.attempts == 1
    assert job.lease_expires_at is not None
    assert job.lease_expires_at > utcnow()
    [attempt] = attempts_of(engine, first.job_id)
    assert (attempt.number, attempt.worker, attempt.outcome) == (1, "w0", AttemptOutcome.running)


def test_heartbeat_extends_lease_and_stores_progress(engine: Engine, tmp_path: Path) -> None:
    insert_run(engine, tmp_path, 1)
    job = claim(engine)
    before = read_job(engine, job.job_id).lease_expires_at
    assert before is not None

    reply = queue.heartbeat(
        engine=engine,
        job_id=job.job_id,
        lease_token=job.lease_token,
        lease_s=LEASE_S * 10,
        progress=queue.Progress(epoch=2, epochs=5, step=40, loss=0.25),
    )

    assert reply == queue.HeartbeatReply(lost=False, cancel_requested=False)
    stored = read_job(engine, job.job_id)
    assert stored.lease_expires_at is not None
    assert stored.lease_expires_at > before
    progress = (stored.progress_epoch, stored.progress_epochs, stored.progress_step)
    assert progress == (2, 5, 40)
    assert stored.progress_loss == 0.25
    lost = queue.heartbeat(engine=engine, job_id=job.job_id, lease_token="other", lease_s=1.0)
    assert lost.lost


def test_complete_records_result_once(engine: Engine, tmp_path: Path) -> None:
    insert_run(engine, tmp_path, 1)
    job = claim(engine)
    lease = {"engine": engine, "job_id": job.job_id}

    assert not queue.complete_job(**lease, lease_token="forged", result={"final_loss": 9.0})
    assert queue.complete_job(**lease, lease_token=job.lease_token, result={"final_loss": 0.5})
    assert not queue.complete_job(**lease, lease_token=job.lease_token, result={"final_loss": 1.0})

    stored = read_job(engine, job.job_id)
    assert stored.status == JobStatus.succeeded
    assert stored.result == {"final_loss": 0.5}
    assert stored.lease_token is None
    assert stored.finished_at is not None
    [attempt] = attempts_of(engine, job.job_id)
    assert attempt.outcome == AttemptOutcome.succeeded
    assert attempt.ended_at is not None


def test_failures_requeue_until_max_attempts_then_fail(engine: Engine, tmp_path: Path) -> None:
    insert_run(engine, tmp_path, 1, max_attempts=3)
    statuses = []
    for number in range(1, 4):
        job = claim(engine)
        assert job.attempt == number
        error = f"boom {number}"
        assert queue.fail_attempt(
            engine=engine, job_id=job.job_id, lease_token=job.lease_token, error=error
        )
        statuses.append(read_job(engine, job.job_id).status)

    assert statuses == [JobStatus.queued, JobStatus.queued, JobStatus.failed]
    stored = read_job(engine, job.job_id)
    assert stored.failures == 3
    assert stored.error == "boom 3"
    assert [(a.outcome, a.error) for a in attempts_of(engine, job.job_id)] == [
        (AttemptOutcome.failed, "boom 1"),
        (AttemptOutcome.failed, "boom 2"),
        (AttemptOutcome.failed, "boom 3"),
    ]
    assert queue.claim_next_job(engine=engine, worker="w1", lease_s=LEASE_S) is None


def test_release_requeues_without_counting(engine: Engine, tmp_path: Path) -> None:
    insert_run(engine, tmp_path, 1, max_attempts=1)
    job = claim(engine)

    assert queue.release_job(
        engine=engine, job_id=job.job_id, lease_token=job.lease_token, reason="shutting down"
    )

    stored = read_job(engine, job.job_id)
    assert stored.status == JobStatus.queued
    assert stored.failures == 0
    [attempt] = attempts_of(engine, job.job_id)
    assert (attempt.outcome, attempt.error) == (AttemptOutcome.interrupted, "shutting down")
    assert claim(engine).attempt == 2


def test_reaper_requeues_expired_then_fails_after_max_attempts(
    engine: Engine, tmp_path: Path
) -> None:
    run_id = insert_run(engine, tmp_path, 2, max_attempts=2)
    job = claim(engine, worker="host:1")

    assert queue.requeue_expired(engine=engine) == []  # the lease still runs
    assert expire_leases(engine) == [run_id]
    stored = read_job(engine, job.job_id)
    assert stored.status == JobStatus.queued
    assert stored.failures == 1
    [attempt] = attempts_of(engine, job.job_id)
    assert attempt.outcome == AttemptOutcome.expired
    assert attempt.error is not None
    assert "worker host:1" in attempt.error

    again = claim(engine, worker="host:2")
    assert again.job_id == job.job_id
    assert again.attempt == 2
    expire_leases(engine)
    failed = read_job(engine, job.job_id)
    assert failed.status == JobStatus.failed
    assert failed.failures == 2
    assert failed.error is not None
    assert failed.error.startswith("lease expired")
    assert claim(engine).position == 1  # the run's other job is still served


def test_expired_attempt_cannot_write_after_reclaim(engine: Engine, tmp_path: Path) -> None:
    insert_run(engine, tmp_path, 1)
    old = claim(engine, worker="slow")
    expire_leases(engine)
    new = claim(engine, worker="fast")
    stale = {"engine": engine, "job_id": old.job_id, "lease_token": old.lease_token}

    assert queue.heartbeat(**stale, lease_s=LEASE_S).lost
    assert not queue.complete_job(**stale, result={"from": "expired attempt"})
    assert not queue.fail_attempt(**stale, error="late failure")
    assert not queue.release_job(**stale, reason="late release")
    assert queue.complete_job(
        engine=engine, job_id=new.job_id, lease_token=new.lease_token, result={"from": "new"}
    )

    stored = read_job(engine, new.job_id)
    assert stored.result == {"from": "new"}
    assert stored.failures == 1
    outcomes = [a.outcome for a in attempts_of(engine, new.job_id)]
    assert outcomes == [AttemptOutcome.expired, AttemptOutcome.succeeded]


def test_cancel_queued_job_is_immediate_and_final(engine: Engine, tmp_path: Path) -> None:
    insert_run(engine, tmp_path, 2)
    with api_session(engine) as session:
        job = queue.cancel_job(session=session, job_id=1)
        session.commit()
    assert job.status == JobStatus.cancelled
    assert job.finished_at is not None

    assert claim(engine).job_id == 2  # the cancelled job is never handed out
    expire_leases(engine)
    assert read_job(engine, 1).status == JobStatus.cancelled
    with api_session(engine) as session:
        assert queue.cancel_job(session=session, job_id=1).status == JobStatus.cancelled


def test_cancel_running_job_reaches_worker_through_heartbeat(
    engine: Engine, tmp_path: Path
) -> None:
    insert_run(engine, tmp_path, 1)
    job = claim(engine)
    lease = {"engine": engine, "job_id": job.job_id, "lease_token": job.lease_token}
    assert not queue.confirm_cancelled(**lease)  # nobody asked yet

    with api_session(engine) as session:
        asked = queue.cancel_job(session=session, job_id=job.job_id)
        session.commit()
    assert asked.status == JobStatus.running
    assert asked.cancel_requested

    assert queue.heartbeat(**lease, lease_s=LEASE_S).cancel_requested
    assert queue.confirm_cancelled(**lease)
    stored = read_job(engine, job.job_id)
    assert stored.status == JobStatus.cancelled
    assert stored.lease_token is None
    assert [a.outcome for a in attempts_of(engine, job.job_id)] == [AttemptOutcome.cancelled]


@pytest.mark.parametrize("ending", ["reaper", "failure", "release"])
def test_cancel_requested_job_is_never_retried(engine: Engine, tmp_path: Path, ending: str) -> None:
    insert_run(engine, tmp_path, 1, max_attempts=5)
    job = claim(engine)
    with Session(engine) as session:
        queue.cancel_job(session=session, job_id=job.job_id)
        session.commit()
    lease = {"engine": engine, "job_id": job.job_id, "lease_token": job.lease_token}

    if ending == "reaper":
        expire_leases(engine)
    elif ending == "failure":
        assert queue.fail_attempt(**lease, error="killed")
    else:
        assert queue.release_job(**lease, reason="shutdown")

    assert read_job(engine, job.job_id).status == JobStatus.cancelled
    assert queue.claim_next_job(engine=engine, worker="w2", lease_s=LEASE_S) is None


def test_cancel_refuses_finished_and_unknown_jobs(engine: Engine, tmp_path: Path) -> None:
    insert_run(engine, tmp_path, 1)
    job = claim(engine)
    queue.complete_job(engine=engine, job_id=job.job_id, lease_token=job.lease_token, result={})
    with Session(engine) as session:
        with pytest.raises(queue.InvalidTransition, match="succeeded"):
            queue.cancel_job(session=session, job_id=job.job_id)
        with pytest.raises(NotFound, match="job 99 not found"):
            queue.cancel_job(session=session, job_id=99)
        with pytest.raises(NotFound, match="run"):
            queue.cancel_run(session=session, run_id=99)
    assert read_job(engine, job.job_id).status == JobStatus.succeeded


def test_cancel_run_then_retry_run(engine: Engine, tmp_path: Path) -> None:
    run_id = insert_run(engine, tmp_path, 4, max_attempts=1)
    done, failing, running = claim(engine), claim(engine), claim(engine)
    queue.complete_job(engine=engine, job_id=done.job_id, lease_token=done.lease_token, result={})
    queue.fail_attempt(
        engine=engine, job_id=failing.job_id, lease_token=failing.lease_token, error="bad"
    )

    with api_session(engine) as session:
        touched = queue.cancel_run(session=session, run_id=run_id)
        session.commit()
    assert [(j.position, j.status, j.cancel_requested) for j in touched] == [
        (2, JobStatus.running, True),
        (3, JobStatus.cancelled, False),
    ]
    lease = {"engine": engine, "job_id": running.job_id, "lease_token": running.lease_token}
    assert queue.confirm_cancelled(**lease)

    with api_session(engine) as session:
        retried = queue.retry_run(session=session, run_id=run_id)
        session.commit()
    assert sorted(j.position for j in retried) == [1, 2, 3]
    assert all(j.status == JobStatus.queued and j.failures == 0 for j in retried)
    assert all(not j.cancel_requested and j.error is None for j in retried)
    assert read_job(engine, done.job_id).status == JobStatus.succeeded
    again = claim(engine)
    assert (again.job_id, again.attempt) == (failing.job_id, 2)
    history = [a.outcome for a in attempts_of(engine, failing.job_id)]
    assert history == [AttemptOutcome.failed, AttemptOutcome.running]


def test_claim_is_one_transaction_when_the_attempt_insert_fails(
    engine: Engine, tmp_path: Path
) -> None:
    insert_run(engine, tmp_path, 1)
    refuse = "CREATE TRIGGER refuse BEFORE INSERT ON attempt BEGIN SELECT RAISE(ABORT, 'full'); END"
    with engine.begin() as conn:
        conn.exec_driver_sql(refuse)

    with pytest.raises(IntegrityError, match="full") as raised:
        queue.claim_next_job(engine=engine, worker="w1", lease_s=LEASE_S)

    assert "INSERT INTO attempt" in str(raised.value.statement)
    job = read_job(engine, 1)  # the claim's UPDATE was rolled back with the insert
    assert (job.status, job.attempts, job.lease_token) == (JobStatus.queued, 0, None)
    assert attempts_of(engine, 1) == []
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TRIGGER refuse")
    assert claim(engine).attempt == 1  # the pooled connection is usable again


def test_locked_database_raises_sqlalchemy_error_and_recovers(tmp_path: Path) -> None:
    """Workers catch SQLAlchemyError: a lock timeout must not come out as sqlite3's own."""
    url = f"sqlite:///{tmp_path / 'locked.db'}"
    engine = make_engine(url, busy_timeout_ms=50)
    metadata.create_all(engine)
    insert_run(engine, tmp_path, 2)
    job = claim(engine)
    holder = sqlite3.connect(tmp_path / "locked.db", isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        with pytest.raises(OperationalError, match="database is locked"):
            queue.claim_next_job(engine=engine, worker="w2", lease_s=LEASE_S)
        with pytest.raises(OperationalError, match="database is locked"):
            queue.complete_job(
                engine=engine, job_id=job.job_id, lease_token=job.lease_token, result={}
            )
        holder.execute("ROLLBACK")

        assert queue.complete_job(
            engine=engine, job_id=job.job_id, lease_token=job.lease_token, result={"ok": 1}
        )
        assert claim(engine, worker="w2").position == 1
    finally:
        holder.close()
        engine.dispose()


def test_transition_table_guards_terminal_states() -> None:
    queue.check_transition(JobStatus.running, JobStatus.succeeded)
    for source in (JobStatus.succeeded, JobStatus.dry_run):
        for target in JobStatus:
            with pytest.raises(queue.InvalidTransition):
                queue.check_transition(source, target)
    with pytest.raises(queue.InvalidTransition, match="a failed job cannot become running"):
        queue.check_transition(JobStatus.failed, JobStatus.running)


POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@pytest.fixture
def pg_engine() -> Iterator[Engine]:
    """The local PostgreSQL, with the tables in a schema of this test's own."""
    schema = f"queue_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL)
    try:
        with admin.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
    except OperationalError as exc:
        admin.dispose()
        pytest.skip(f"PostgreSQL at {POSTGRES_URL} is unreachable: {exc.orig}")
    # A claim that waited on a locked row instead of skipping it fails fast here.
    options = f"-csearch_path={schema} -clock_timeout=5000"
    engine = create_engine(POSTGRES_URL, connect_args={"options": options}, pool_size=8)
    metadata.create_all(engine)
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.mark.slow
def test_postgres_concurrent_claims_take_each_job_once(pg_engine: Engine, tmp_path: Path) -> None:
    insert_run(pg_engine, tmp_path, 300)

    def drain(worker: str) -> list[int]:
        taken = []
        while job := queue.claim_next_job(engine=pg_engine, worker=worker, lease_s=LEASE_S):
            taken.append(job.job_id)
            queue.complete_job(
                engine=pg_engine, job_id=job.job_id, lease_token=job.lease_token, result={}
            )
        return taken

    with ThreadPoolExecutor(max_workers=4) as pool:
        per_worker = list(pool.map(drain, [f"pg{i}" for i in range(4)]))

    claimed = [job_id for taken in per_worker for job_id in taken]
    assert sorted(claimed) == list(range(1, 301))
    with Session(pg_engine) as session:
        statuses = set(session.scalars(select(Job.status)))
        assert statuses == {JobStatus.succeeded}
        assert len(list(session.scalars(select(Attempt.id)))) == 300


@pytest.mark.slow
def test_postgres_claim_skips_a_locked_row(pg_engine: Engine, tmp_path: Path) -> None:
    insert_run(pg_engine, tmp_path, 2)
    with pg_engine.connect() as holder:
        holder.execute(select(Job.id).where(col(Job.id) == 1).with_for_update())

        job = claim(pg_engine)  # lock_timeout would fail this if it waited on row 1

        assert job.job_id == 2
        holder.rollback()
    assert claim(pg_engine).job_id == 1


@pytest.mark.slow
def test_postgres_heartbeat_fences_and_reports_cancel(pg_engine: Engine, tmp_path: Path) -> None:
    insert_run(pg_engine, tmp_path, 1)
    job = claim(pg_engine)
    lease = {"engine": pg_engine, "job_id": job.job_id, "lease_token": job.lease_token}

    beat = queue.heartbeat(**lease, lease_s=LEASE_S, progress=queue.Progress(1, 3, 7, 0.5))
    assert beat == queue.HeartbeatReply(lost=False, cancel_requested=False)
    with Session(pg_engine) as session:
        queue.cancel_job(session=session, job_id=job.job_id)
        session.commit()
    assert queue.heartbeat(**lease, lease_s=LEASE_S).cancel_requested
    assert queue.heartbeat(**{**lease, "lease_token": "stale"}, lease_s=LEASE_S).lost

    stored = read_job(pg_engine, job.job_id)
    progress = (stored.progress_epoch, stored.progress_epochs, stored.progress_step)
    assert progress == (1, 3, 7)
    assert stored.progress_loss == 0.5
    assert stored.lease_expires_at is not None
    assert stored.lease_expires_at > utcnow()
    assert queue.confirm_cancelled(**lease)
