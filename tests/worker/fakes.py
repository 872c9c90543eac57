"""Test executors (worker processes load them as `tests.worker.fakes:<Name>`) and test data.

`SleepExecutor` runs a real child process per attempt, like the training executor, but
"trains" by sleeping; the run's `training` options steer it (duration, steps, which job
positions crash or raise, whether stop requests are ignored). Every child appends a line
per event to `<artifact_dir>/executions.log`, so tests can count real executions.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from app.core.config import Settings
from app.core.db import make_engine
from app.models import Job, JobStatus, Run, metadata
from app.queue import ClaimedJob, Progress
from app.study.contract import ContractError
from worker.executors.base import Execution, Outcome, ProgressReporter
from worker.executors.forkserver import ChildProcessExecutor

EXECUTIONS_LOG = "executions.log"


def record(job: ClaimedJob, event: str) -> None:
    """Append `<event> <job> <attempt> <token> <pid>` to the job's executions log."""
    line = f"{event} {job.job_id} {job.attempt} {job.lease_token} {os.getpid()}\n"
    path = Path(job.artifact_dir) / EXECUTIONS_LOG
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(line)


def read_executions(artifact_dir: str | Path) -> list[tuple[str, int, int, str, int]]:
    path = Path(artifact_dir) / EXECUTIONS_LOG
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        event, job_id, attempt, token, pid = line.split()
        rows.append((event, int(job_id), int(attempt), token, int(pid)))
    return rows


def sleep_job(job: ClaimedJob, reporter: ProgressReporter) -> dict[str, Any]:
    """A job that sleeps `sleep_s` in `steps` steps, reporting progress and honouring stops."""
    options = job.training
    record(job, "start")
    if job.position in options.get("poison_positions", []):
        os.kill(os.getpid(), signal.SIGKILL)
    if job.position in options.get("raise_positions", []):
        raise RuntimeError(f"bad input at position {job.position}")
    if job.position in options.get("broken_file_positions", []):
        raise ContractError(job.train_data_path, "probeGuess", "a complex array", "float64 (8, 8)")
    steps = int(options.get("steps", 10))
    for step in range(1, steps + 1):
        if reporter.should_stop() and not options.get("ignore_stop", False):
            record(job, "stopped")
            return {"status": "stopped", "epochs_completed": 0}
        time.sleep(float(options.get("sleep_s", 1.0)) / steps)
        reporter.on_progress(epoch=1, epochs=1, step=step, loss=1.0 / step)
    record(job, "end")
    return {
        "status": "succeeded",
        "final_loss": float("nan") if options.get("nan_loss") else 1.0 / steps,
        "lease_token": job.lease_token,
        "attempt": job.attempt,
        "pid": os.getpid(),
    }


def crash_job(job: ClaimedJob, reporter: ProgressReporter) -> dict[str, Any]:
    """Ends the way `training["crash"]` says: exit, segfault or raise."""
    how = job.training["crash"]
    if how == "exit":
        os._exit(3)
    if how == "segfault":
        os.kill(os.getpid(), signal.SIGSEGV)
    raise ValueError(f"probe missing in {job.train_data_path}")


def grandchild_job(job: ClaimedJob, reporter: ProgressReporter) -> dict[str, Any]:
    """Starts a process of its own (as a data loader would), then waits to be killed."""
    helper = subprocess.Popen(["sleep", "60"])
    Path(job.artifact_dir, "grandchild.pid").write_text(str(helper.pid))
    reporter.on_progress(epoch=1, epochs=1, step=1, loss=0.5)
    time.sleep(60)
    return {"status": "succeeded"}


class SleepExecutor(ChildProcessExecutor):
    """Runs `sleep_job` in a fork-server child, exactly as training runs."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(sleep_job, preload=("tests.worker.fakes",))


class _Finished:
    """An execution that ended before anyone waited on it."""

    def __init__(self, outcome: Outcome) -> None:
        self._outcome = outcome

    def wait(self, timeout_s: float) -> Outcome | None:
        return self._outcome

    def take_progress(self) -> Progress | None:
        return None

    def request_stop(self) -> None:
        return None

    def kill(self) -> None:
        return None


class NoopExecutor:
    """Succeeds at once, in the worker process: exercises the queue, not the children."""

    def __init__(self, settings: Settings) -> None:
        self.started: list[int] = []

    def start(self, job: ClaimedJob) -> Execution:
        self.started.append(job.job_id)
        result = {
            "status": "succeeded",
            "lease_token": job.lease_token,
            "attempt": job.attempt,
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        }
        return _Finished(Outcome("succeeded", result=result))

    def close(self) -> None:
        return None


def create_database(url: str) -> Engine:
    """A fresh database with every table, on the project's engine settings."""
    engine = make_engine(url)
    metadata.create_all(engine)
    return engine


def insert_run(
    engine: Engine,
    root: Path,
    n_jobs: int,
    *,
    training: dict[str, Any] | None = None,
    max_attempts: int = 3,
    status: JobStatus = JobStatus.queued,
) -> int:
    """A run of `n_jobs` jobs under `root` (paths inside it); returns the run id."""
    with Session(engine) as session:
        run = Run(
            phase_c_root=str(root / "phase_c"),
            phase_d_root=str(root / "phase_d"),
            artifact_root=str(root / "artifacts"),
            training=training or {},
            design={"neighbor_count": 7},
        )
        session.add(run)
        session.flush()
        assert run.id is not None
        for position in range(n_jobs):
            job_dir = root / "artifacts" / f"run{run.id}" / f"job{position}"
            session.add(
                Job(
                    run_id=run.id,
                    position=position,
                    dose=1000.0 * (position + 1),
                    view="baseline",
                    gridsize=1,
                    train_data_path=str(root / "phase_c" / "patched_train.npz"),
                    test_data_path=str(root / "phase_c" / "patched_test.npz"),
                    log_path=str(job_dir / "train.log"),
                    artifact_dir=str(job_dir),
                    status=status,
                    max_attempts=max_attempts,
                )
            )
        session.commit()
        return run.id


def wait_for(condition: Callable[[], Any], *, timeout_s: float = 60.0, what: str = "") -> Any:
    """Poll `condition` until it returns something truthy; fail the test on timeout."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what or condition}")


def jobs_of(engine: Engine, run_id: int) -> list[Job]:
    with Session(engine) as session:
        query = select(Job).where(col(Job.run_id) == run_id).order_by(col(Job.position))
        return list(session.scalars(query))


def all_finished(engine: Engine, run_id: int) -> bool:
    active = {JobStatus.queued, JobStatus.running}
    return all(job.status not in active for job in jobs_of(engine, run_id))
