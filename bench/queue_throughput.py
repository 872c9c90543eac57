"""Claim + complete throughput of no-op jobs on SQLite, beside a raw sqlite3 ceiling.

Each configuration gets a fresh database of N queued jobs; P processes then drain it,
each claiming a job and completing it at once. Three ways to drain:
  raw sqlite3   the same SQL as the queue, hand-written on the sqlite3 module (the ceiling)
  app.queue     claim_next_job + complete_job (what a worker calls)
  worker loop   `python -m worker --once` with the no-op executor (everything a worker does)

    .venv/bin/python bench/queue_throughput.py [--jobs 4000] [--quick]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

CLAIM_SQL = """
UPDATE job SET status = 'running', lease_token = ?, lease_owner = ?, lease_expires_at = ?,
       attempts = attempts + 1, started_at = ?, updated_at = ?
WHERE id = (SELECT id FROM job WHERE status = 'queued'
            ORDER BY run_id, position, id LIMIT 1) AND status = 'queued'
RETURNING id, attempts, run_id
"""
ATTEMPT_SQL = """
INSERT INTO attempt (job_id, number, worker, lease_token, started_at, outcome)
VALUES (?, ?, ?, ?, ?, 'running')
"""
RUN_SQL = "SELECT training, execution, design FROM run WHERE id = ?"
COMPLETE_SQL = """
UPDATE job SET status = 'succeeded', result = ?, finished_at = ?, lease_token = NULL,
       lease_owner = NULL, lease_expires_at = NULL, updated_at = ?
WHERE id = ? AND lease_token = ? AND status = 'running'
"""
END_ATTEMPT_SQL = """
UPDATE attempt SET outcome = 'succeeded', ended_at = ? WHERE job_id = ? AND lease_token = ?
"""


def make_database(path: Path, n_jobs: int) -> str:
    from sqlalchemy import insert

    from app.core.db import make_engine
    from app.models import metadata

    url = f"sqlite:///{path}"
    engine = make_engine(url)
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(insert(metadata.tables["run"]), [_run_row(path.parent)])
        jobs = [_job_row(path.parent, i) for i in range(n_jobs)]
        conn.execute(insert(metadata.tables["job"]), jobs)
    engine.dispose()
    return url


def _run_row(root: Path) -> dict[str, object]:
    now = datetime.now(UTC)
    empty: dict[str, object] = {}
    return {
        "id": 1,
        "created_at": now,
        "phase_c_root": str(root / "phase_c"),
        "phase_d_root": str(root / "phase_d"),
        "artifact_root": str(root / "artifacts"),
        "strict": False,
        "dry_run": False,
        "filters": empty,
        "design": empty,
        "training": empty,
        "execution": empty,
    }


def _job_row(root: Path, position: int) -> dict[str, object]:
    now = datetime.now(UTC)
    return {
        "run_id": 1,
        "position": position,
        "dose": 1000.0,
        "view": "baseline",
        "gridsize": 1,
        "train_data_path": str(root / "phase_c" / "train.npz"),
        "test_data_path": str(root / "phase_c" / "test.npz"),
        "log_path": str(root / "artifacts" / f"job{position}" / "train.log"),
        "artifact_dir": str(root / "artifacts" / f"job{position}"),
        "status": "queued",
        "attempts": 0,
        "failures": 0,
        "max_attempts": 3,
        "cancel_requested": False,
        "created_at": now,
        "updated_at": now,
    }


def drain_raw(url: str, name: str) -> int:
    """The ceiling: the queue's statements on the bare sqlite3 module."""
    conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    done = 0
    while True:
        now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
        expires = (datetime.now(UTC) + timedelta(seconds=60)).strftime("%Y-%m-%d %H:%M:%S.%f")
        token = uuid.uuid4().hex
        conn.execute("BEGIN IMMEDIATE")
        row = conn.execute(CLAIM_SQL, (token, name, expires, now, now)).fetchone()
        if row is None:
            conn.execute("COMMIT")
            return done
        job_id, number, run_id = row
        conn.execute(ATTEMPT_SQL, (job_id, number, name, token, now))
        conn.execute(RUN_SQL, (run_id,)).fetchone()
        conn.execute("COMMIT")
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(COMPLETE_SQL, ('{"status": "succeeded"}', now, now, job_id, token))
        conn.execute(END_ATTEMPT_SQL, (now, job_id, token))
        conn.execute("COMMIT")
        done += 1


def drain_queue(url: str, name: str) -> int:
    """What a worker calls, without the worker around it."""
    from app import queue
    from app.core.db import make_engine

    engine = make_engine(url)
    done = 0
    while job := queue.claim_next_job(engine=engine, worker=name, lease_s=60.0):
        queue.complete_job(
            engine=engine, job_id=job.job_id, lease_token=job.lease_token, result={"ok": True}
        )
        done += 1
    engine.dispose()
    return done


def _child(
    drain: Callable[[str, str], int], url: str, name: str, start: object, out: object
) -> None:
    start.wait()  # type: ignore[attr-defined]
    out.put(drain(url, name))  # type: ignore[attr-defined]


def run_processes(drain: Callable[[str, str], int], url: str, processes: int) -> tuple[int, float]:
    """Drain with `processes` processes released together; (jobs done, seconds)."""
    context = multiprocessing.get_context("spawn")
    start, out = context.Event(), context.Queue()
    children = [
        context.Process(target=_child, args=(drain, url, f"bench:{i}", start, out))
        for i in range(processes)
    ]
    for child in children:
        child.start()
    time.sleep(1.0 + 0.3 * processes)  # let every child import and connect
    began = time.perf_counter()
    start.set()
    done = sum(out.get() for _ in children)
    elapsed = time.perf_counter() - began
    for child in children:
        child.join()
    return done, elapsed


def run_worker_loop(url: str, root: Path, processes: int) -> tuple[int, float]:
    """`python -m worker --workers P --once` with the no-op executor (startup included)."""
    env = {
        **os.environ,
        "PTYCHOJOBS_DATABASE_URL": url,
        "PTYCHOJOBS_DATA_ROOT": str(root),
        "PTYCHOJOBS_EXECUTOR": "bench.queue_throughput:NoopExecutor",
        "PTYCHOJOBS_LOG_LEVEL": "WARNING",
    }
    argv = [sys.executable, "-m", "worker", "--workers", str(processes), "--once"]
    began = time.perf_counter()
    subprocess.run(argv, env=env, cwd=REPO, check=True)
    elapsed = time.perf_counter() - began
    from app.core.db import make_engine

    engine = make_engine(url)
    with engine.connect() as conn:
        done = conn.exec_driver_sql("SELECT count(*) FROM job WHERE status='succeeded'").scalar()
    engine.dispose()
    return int(done or 0), elapsed


class NoopExecutor:
    """Finishes every job at once, in the worker process (loaded by `run_worker_loop`)."""

    def __init__(self, settings: object) -> None:
        from worker.execution import Outcome

        self._outcome = Outcome("succeeded", result={"status": "succeeded"})

    def start(self, job: object) -> NoopExecutor:
        return self

    def wait(self, timeout_s: float) -> object:
        return self._outcome

    def take_progress(self) -> None:
        return None

    def request_stop(self) -> None:
        return None

    def kill(self) -> None:
        return None

    def close(self) -> None:
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=4000)
    parser.add_argument("--quick", action="store_true", help="1,000 jobs, no worker loop rows")
    args = parser.parse_args()
    n_jobs = 1000 if args.quick else args.jobs
    rows: list[tuple[str, int, int, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for processes in (1, 4):
            for label, drain in (("raw sqlite3", drain_raw), ("app.queue", drain_queue)):
                url = make_database(root / f"{label[:3]}{processes}.db", n_jobs)
                done, elapsed = run_processes(drain, url, processes)
                rows.append((label, processes, done, elapsed))
            if not args.quick:
                url = make_database(root / f"loop{processes}.db", n_jobs)
                done, elapsed = run_worker_loop(url, root, processes)
                rows.append(("worker loop*", processes, done, elapsed))
    print_table(rows, n_jobs)


def print_table(rows: list[tuple[str, int, int, float]], n_jobs: int) -> None:
    ceiling = {p: d / e for label, p, d, e in rows if label == "raw sqlite3"}
    print(f"\nclaim + complete of {n_jobs} no-op jobs on SQLite (WAL, synchronous=NORMAL)")
    print(f"{'path':<14}{'procs':>6}{'jobs':>7}{'seconds':>9}{'jobs/s':>9}{'/ceiling':>10}")
    for label, processes, done, elapsed in rows:
        rate = done / elapsed
        print(
            f"{label:<14}{processes:>6}{done:>7}{elapsed:>9.2f}{rate:>9.0f}"
            f"{rate / ceiling[processes]:>10.2f}"
        )
    if any(label == "worker loop*" for label, *_ in rows):
        print("* includes process start-up (imports, fork server) and train.log lines")
    print("aim: app.queue >= 1000 jobs/s and >= 1/3 of the raw ceiling")


if __name__ == "__main__":
    main()
