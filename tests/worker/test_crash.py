"""Real worker processes on one SQLite file: kill -9, poison jobs, many workers, SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from app.models import Attempt, AttemptOutcome, Job, JobStatus, utcnow
from tests.worker.conftest import FAST, WorkerProcesses
from tests.worker.fakes import all_finished, insert_run, jobs_of, read_executions, wait_for

pytestmark = pytest.mark.slow  # real worker processes killed and restarted

# A job runs 1.5 s in 15 steps; a kill waits for step 2, so it lands well inside the job.
SLOW_JOB = {"sleep_s": 1.5, "steps": 15}
KILLS = 3


def attempts_by_job(engine: Engine) -> dict[int, list[Attempt]]:
    with Session(engine) as session:
        query = select(Attempt).order_by(col(Attempt.job_id), col(Attempt.number))
        grouped: dict[int, list[Attempt]] = {}
        for attempt in session.exec(query):
            grouped.setdefault(attempt.job_id, []).append(attempt)
        return grouped


def busy_jobs(engine: Engine, run_id: int, owners: set[str] | None = None) -> list[Job]:
    """Running jobs well into their sleep (held by one of `owners`, if given)."""
    return [
        job
        for job in jobs_of(engine, run_id)
        if job.status == JobStatus.running
        and (job.progress_step or 0) >= 2
        and (owners is None or job.lease_owner in owners)
    ]


def busy_job(engine: Engine, run_id: int) -> Job | None:
    return next(iter(busy_jobs(engine, run_id)), None)


def two_busy(engine: Engine, run_id: int, owners: set[str]) -> list[Job] | None:
    busy = busy_jobs(engine, run_id, owners)
    return busy[:2] if len(busy) >= 2 else None


def owner_pid(owner: str) -> int:
    return int(owner.split(":")[1])


def integrity(database: str) -> str:
    with sqlite3.connect(database) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


def assert_each_job_succeeded_once(engine: Engine, run_id: int) -> dict[int, list[Attempt]]:
    """Every job succeeded exactly once, and its result is its last attempt's own."""
    history = attempts_by_job(engine)
    for job in jobs_of(engine, run_id):
        attempts = history[job.id or 0]
        succeeded = [a for a in attempts if a.outcome == AttemptOutcome.succeeded]
        assert job.status == JobStatus.succeeded
        assert len(succeeded) == 1
        assert succeeded[0] is attempts[-1]
        assert job.result is not None
        assert job.result["lease_token"] == succeeded[0].lease_token
        # One child started per attempt: re-executions are exactly the extra attempts.
        starts = [e for e in read_executions(job.artifact_dir) if e[0] == "start"]
        assert sorted(e[3] for e in starts) == sorted(a.lease_token for a in attempts)
    return history


def test_kill_9_workers_mid_job(workers: WorkerProcesses, engine: Engine, tmp_path: Path) -> None:
    run_id = insert_run(engine, tmp_path, 8, training=SLOW_JOB, max_attempts=10)
    alive = {p.pid: p for p in (workers.start() for _ in range(3))}
    kills: dict[str, datetime] = {}
    for _ in range(KILLS):
        # Kill only while another worker is busy too: it is alive to reap the lost lease.
        owners = {f"{socket.gethostname()}:{pid}" for pid in alive}
        job, _ = wait_for(lambda o=owners: two_busy(engine, run_id, o), what="two busy workers")
        assert job.lease_owner is not None
        victim = alive.pop(owner_pid(job.lease_owner))
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        kills[job.lease_owner] = utcnow()
        replacement = workers.start()
        alive[replacement.pid] = replacement

    wait_for(lambda: all_finished(engine, run_id), timeout_s=90, what="every job to finish")

    history = assert_each_job_succeeded_once(engine, run_id)
    expired = [a for attempts in history.values() for a in attempts if a.outcome != "succeeded"]
    assert sorted(a.worker for a in expired) == sorted(kills)
    assert all(a.outcome == AttemptOutcome.expired for a in expired)
    assert sum(len(a) for a in history.values()) == 8 + len(kills)
    # Recovery: the lease runs out, then the next reaper pass takes it back. The slack
    # covers process scheduling on a loaded machine, not the queue's own delays.
    bound_s = float(FAST["lease_s"]) + float(FAST["reaper_interval_s"]) + 1.5
    for attempt in expired:
        assert attempt.ended_at is not None
        assert (attempt.ended_at - kills[attempt.worker]).total_seconds() <= bound_s
    assert integrity(str(engine.url.database)) == "ok"


def test_kill_9_training_children_mid_job(
    workers: WorkerProcesses, engine: Engine, tmp_path: Path
) -> None:
    run_id = insert_run(engine, tmp_path, 6, training=SLOW_JOB, max_attempts=10)
    for _ in range(2):
        workers.start()
    killed: list[int] = []
    for _ in range(KILLS):
        job = wait_for(lambda: busy_job(engine, run_id), what="a training child")
        [child] = [e for e in read_executions(job.artifact_dir) if e[3] == job.lease_token]
        os.kill(child[4], signal.SIGKILL)
        killed.append(child[4])
        wait_for(lambda j=job: _attempt_over(engine, j), what="the worker to notice")

    wait_for(lambda: all_finished(engine, run_id), timeout_s=90, what="every job to finish")

    history = assert_each_job_succeeded_once(engine, run_id)
    failed = [a for attempts in history.values() for a in attempts if a.outcome != "succeeded"]
    assert len(failed) == len(killed) == KILLS
    assert all(a.outcome == AttemptOutcome.failed for a in failed)
    assert all(a.error is not None and "killed by SIGKILL" in a.error for a in failed)
    assert all(p.poll() is None for p in workers.started)  # the workers carried on
    assert integrity(str(engine.url.database)) == "ok"


def _attempt_over(engine: Engine, job: Job) -> bool:
    with Session(engine) as session:
        stored = session.get(Job, job.id)
        return stored is not None and stored.lease_token != job.lease_token


def test_poison_job_fails_after_max_attempts_others_succeed(
    workers: WorkerProcesses, engine: Engine, tmp_path: Path
) -> None:
    training = {"sleep_s": 0.3, "steps": 3, "poison_positions": [1]}
    run_id = insert_run(engine, tmp_path, 4, training=training, max_attempts=3)

    supervisor = workers.start("--workers", "2", "--once")

    assert supervisor.wait(timeout=90) == 0
    jobs = jobs_of(engine, run_id)
    assert [j.status for j in jobs] == [JobStatus.succeeded, JobStatus.failed] + [
        JobStatus.succeeded
    ] * 2
    poison = jobs[1]
    assert poison.failures == 3
    assert poison.error is not None
    assert poison.error.startswith("training process killed by SIGKILL")
    outcomes = [a.outcome for a in attempts_by_job(engine)[poison.id or 0]]
    assert outcomes == [AttemptOutcome.failed] * 3


def test_four_workers_claim_2000_jobs_exactly_once(
    workers: WorkerProcesses, engine: Engine, tmp_path: Path
) -> None:
    run_id = insert_run(engine, tmp_path, 2000)

    supervisor = workers.start(
        "--workers",
        "4",
        "--once",
        executor="tests.worker.fakes:NoopExecutor",
        manifest_interval_s=1.0,
    )

    assert supervisor.wait(timeout=120) == 0
    jobs = jobs_of(engine, run_id)
    assert len(jobs) == 2000
    assert all(j.status == JobStatus.succeeded and j.attempts == 1 for j in jobs)
    history = attempts_by_job(engine)
    assert sorted(history) == [j.id for j in jobs]
    assert all(len(a) == 1 and a[0].outcome == AttemptOutcome.succeeded for a in history.values())
    assert all(j.result["lease_token"] == history[j.id][0].lease_token for j in jobs)
    assert len({a[0].worker for a in history.values()}) > 1
    logs = workers.logs()
    assert "database is locked" not in logs
    assert "Traceback" not in logs
    assert integrity(str(engine.url.database)) == "ok"


def test_one_worker_per_gpu_each_pinned_to_its_device(
    workers: WorkerProcesses, engine: Engine, tmp_path: Path
) -> None:
    run_id = insert_run(engine, tmp_path, 40)

    supervisor = workers.start(
        "--gpus", "0,1", "--once", executor="tests.worker.fakes:NoopExecutor"
    )

    assert supervisor.wait(timeout=60) == 0
    history = attempts_by_job(engine)
    devices = {}
    for job in jobs_of(engine, run_id):
        assert job.status == JobStatus.succeeded
        assert job.result is not None
        [attempt] = history[job.id or 0]
        devices[attempt.worker] = job.result["cuda_visible_devices"]
    # Worker names end in their GPU, and each saw only that GPU.
    assert {name.rsplit(":", 1)[1] for name in devices} <= {"0", "1"}
    assert all(name.endswith(f":{device}") for name, device in devices.items())


def test_sigterm_releases_a_long_job_and_exits(
    workers: WorkerProcesses, engine: Engine, tmp_path: Path
) -> None:
    run_id = insert_run(engine, tmp_path, 1, training={"sleep_s": 60.0, "steps": 600})
    worker = workers.start(shutdown_grace_s=1.0)
    job = wait_for(lambda: busy_job(engine, run_id), what="the job to start")

    worker.send_signal(signal.SIGTERM)

    assert worker.wait(timeout=30) == 0
    [stored] = jobs_of(engine, run_id)
    assert stored.status == JobStatus.queued
    assert stored.failures == 0
    [attempt] = attempts_by_job(engine)[job.id or 0]
    assert attempt.outcome == AttemptOutcome.interrupted
    assert [e[0] for e in read_executions(job.artifact_dir)] == ["start"]


def test_sigterm_to_supervisor_lets_busy_workers_finish(
    workers: WorkerProcesses, engine: Engine, tmp_path: Path
) -> None:
    run_id = insert_run(engine, tmp_path, 4, training=SLOW_JOB)
    supervisor = workers.start("--workers", "2")
    wait_for(
        lambda: sum(j.status == JobStatus.running for j in jobs_of(engine, run_id)) == 2,
        what="both workers to be busy",
    )

    supervisor.send_signal(signal.SIGTERM)

    assert supervisor.wait(timeout=30) == 0
    statuses = [j.status for j in jobs_of(engine, run_id)]
    assert statuses == [JobStatus.succeeded] * 2 + [JobStatus.queued] * 2
