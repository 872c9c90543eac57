"""The worker loop in this process, with training children forked from a fork server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from app import queue
from app.core.config import Settings
from app.models import Attempt, AttemptOutcome, Job, JobStatus, utcnow
from tests.worker.fakes import NoopExecutor, insert_run, jobs_of, read_executions, wait_for
from worker.executors.base import load_executor
from worker.loop import Worker


def attempts_of(engine: Engine, job_id: int) -> list[Attempt]:
    with Session(engine) as session:
        query = select(Attempt).where(col(Attempt.job_id) == job_id).order_by(col(Attempt.number))
        return list(session.exec(query))


def make_worker(settings: Settings, engine: Engine, *, once: bool = True) -> Worker:
    executor = load_executor(settings)
    return Worker(settings=settings, engine=engine, executor=executor, name="test:1", once=once)


@contextmanager
def running(worker: Worker) -> Iterator[threading.Thread]:
    """The worker loop in a thread; stopped (quickly) and joined on exit."""
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        yield thread
    finally:
        worker.stop.request()
        worker.stop.request()
        thread.join(timeout=30)
        assert not thread.is_alive()


def running_job(engine: Engine, run_id: int) -> Job | None:
    return next((j for j in jobs_of(engine, run_id) if j.status == JobStatus.running), None)


def test_runs_jobs_records_results_failures_and_manifest(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    training = {"sleep_s": 0.3, "steps": 3, "raise_positions": [1]}
    run_id = insert_run(engine, tmp_path, 3, training=training, max_attempts=2)

    make_worker(settings, engine).run()

    jobs = jobs_of(engine, run_id)
    assert [j.status for j in jobs] == [JobStatus.succeeded, JobStatus.failed, JobStatus.succeeded]
    good, bad = jobs[0], jobs[1]
    [attempt] = attempts_of(engine, good.id or 0)
    assert good.result is not None
    assert good.result["lease_token"] == attempt.lease_token
    assert good.progress_step is not None
    assert good.progress_loss == 1.0 / good.progress_step
    assert bad.failures == 2
    assert bad.error is not None
    assert bad.error.startswith("RuntimeError: bad input at position 1")
    assert [a.outcome for a in attempts_of(engine, bad.id or 0)] == [AttemptOutcome.failed] * 2
    assert "attempt 2 failed: RuntimeError: bad input" in Path(bad.log_path).read_text()
    manifest = json.loads((tmp_path / "artifacts" / "training_manifest.json").read_text())
    assert [j["status"] for j in manifest["jobs"]] == ["succeeded", "failed", "succeeded"]
    assert len(manifest["jobs"][1]["attempts"]) == 2


def test_child_killed_by_signal_fails_attempt_with_cause(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    run_id = insert_run(engine, tmp_path, 2, training={"sleep_s": 0.2, "poison_positions": [0]})

    make_worker(settings, engine).run()

    poisoned, healthy = jobs_of(engine, run_id)
    assert poisoned.status == JobStatus.failed
    assert poisoned.failures == 3
    assert poisoned.error is not None
    assert "killed by SIGKILL" in poisoned.error
    assert healthy.status == JobStatus.succeeded
    assert len(read_executions(poisoned.artifact_dir)) == 3  # one start per attempt


def test_result_that_is_not_json_fails_the_attempt(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    training = {"sleep_s": 0.1, "steps": 1, "nan_loss": True}
    run_id = insert_run(engine, tmp_path, 1, training=training, max_attempts=1)

    make_worker(settings, engine).run()

    [job] = jobs_of(engine, run_id)
    assert job.status == JobStatus.failed
    assert job.result is None
    assert job.error is not None
    assert job.error.startswith("the result is not storable as JSON")


def test_lost_lease_kills_child_and_drops_its_result(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    run_id = insert_run(engine, tmp_path, 1, training={"sleep_s": 30.0, "steps": 300})
    worker = make_worker(settings, engine, once=False)
    with running(worker):
        job = wait_for(lambda: running_job(engine, run_id), what="the job to start")
        wait_for(lambda: read_executions(job.artifact_dir), what="the child to start")
        # The lease is taken away (as if it had expired) and another worker claims the job.
        queue.requeue_expired(engine=engine, now=utcnow() + timedelta(minutes=5))
        thief = queue.claim_next_job(engine=engine, worker="thief:2", lease_s=60)
        assert thief is not None
        wait_for(lambda: worker.attempts_run == 1, what="the worker to give the job up")
        assert queue.complete_job(
            engine=engine, job_id=thief.job_id, lease_token=thief.lease_token, result={"by": 2}
        )

    [stored] = jobs_of(engine, run_id)
    assert stored.status == JobStatus.succeeded
    assert stored.result == {"by": 2}
    outcomes = [a.outcome for a in attempts_of(engine, thief.job_id)]
    assert outcomes == [AttemptOutcome.expired, AttemptOutcome.succeeded]
    assert [e[0] for e in read_executions(job.artifact_dir)] == ["start"]  # killed mid-sleep


def test_cancel_running_job_stops_child_cooperatively(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    run_id = insert_run(engine, tmp_path, 2, training={"sleep_s": 30.0, "steps": 300})
    worker = make_worker(settings, engine, once=False)
    with running(worker), Session(engine, expire_on_commit=False) as session:
        job = wait_for(lambda: running_job(engine, run_id), what="the job to start")
        queue.cancel_job(session=session, job_id=2)  # still queued: cancelled at once
        queue.cancel_job(session=session, job_id=job.id)
        session.commit()
        wait_for(lambda: worker.attempts_run == 1, what="the cancelled job to end")

    running_one, queued_one = jobs_of(engine, run_id)
    assert running_one.status == JobStatus.cancelled
    assert queued_one.status == JobStatus.cancelled
    assert [a.outcome for a in attempts_of(engine, job.id)] == [AttemptOutcome.cancelled]
    assert attempts_of(engine, 2) == []
    assert [e[0] for e in read_executions(job.artifact_dir)] == ["start", "stopped"]


def test_cancel_kills_child_that_ignores_stop_after_grace(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    training = {"sleep_s": 30.0, "steps": 300, "ignore_stop": True}
    run_id = insert_run(engine, tmp_path, 1, training=training)
    worker = make_worker(settings, engine, once=False)
    with running(worker), Session(engine) as session:
        job = wait_for(lambda: running_job(engine, run_id), what="the job to start")
        queue.cancel_job(session=session, job_id=job.id)
        session.commit()
        wait_for(lambda: worker.attempts_run == 1, what="the cancelled job to be killed")

    [stored] = jobs_of(engine, run_id)
    assert stored.status == JobStatus.cancelled
    assert [e[0] for e in read_executions(job.artifact_dir)] == ["start"]


def test_stop_request_lets_a_short_job_finish_and_claims_no_more(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    run_id = insert_run(engine, tmp_path, 2, training={"sleep_s": 1.0})
    worker = make_worker(settings, engine, once=False)
    thread = threading.Thread(target=worker.run)
    thread.start()
    wait_for(lambda: running_job(engine, run_id), what="the job to start")
    worker.stop.request()
    thread.join(timeout=30)

    first, second = jobs_of(engine, run_id)
    assert first.status == JobStatus.succeeded
    assert second.status == JobStatus.queued


def test_stop_request_releases_a_long_job_after_grace(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    quick = settings.model_copy(update={"shutdown_grace_s": 0.5})
    run_id = insert_run(engine, tmp_path, 1, training={"sleep_s": 30.0, "steps": 300})
    worker = make_worker(quick, engine, once=False)
    thread = threading.Thread(target=worker.run)
    thread.start()
    job = wait_for(lambda: running_job(engine, run_id), what="the job to start")
    worker.stop.request()
    thread.join(timeout=30)

    [stored] = jobs_of(engine, run_id)
    assert stored.status == JobStatus.queued
    assert stored.failures == 0
    [attempt] = attempts_of(engine, job.id)
    assert attempt.outcome == AttemptOutcome.interrupted


def test_heartbeat_must_fit_well_inside_the_lease(settings: Settings, engine: Engine) -> None:
    slow = settings.model_copy(update={"heartbeat_s": 1.5, "lease_s": 2.0})
    with pytest.raises(ValueError, match=r"PTYCHOJOBS_HEARTBEAT_S \(1.5\) must be at most half"):
        Worker(settings=slow, engine=engine, executor=NoopExecutor(slow), name="test:1")


def test_a_broken_data_file_fails_the_job_at_once_without_retries(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    training = {"sleep_s": 0.1, "steps": 1, "broken_file_positions": [0]}
    run_id = insert_run(engine, tmp_path, 1, training=training, max_attempts=3)

    make_worker(settings, engine).run()

    (job,) = jobs_of(engine, run_id)
    assert job.status == JobStatus.failed
    assert job.failures == 1
    assert [a.outcome for a in attempts_of(engine, job.id or 0)] == [AttemptOutcome.failed]
    assert job.error is not None
    assert job.error.startswith("ContractError: ")
    assert "key 'probeGuess'" in job.error
    assert "not retried: another attempt would fail the same way" in job.error
