"""Claim + complete throughput of no-op jobs on SQLite, beside a raw sqlite3 ceiling.

Each measurement gets a fresh database of N queued jobs; P processes then drain it, each
claiming a job and completing it at once. Three ways to drain:
  raw sqlite3   the queue's work hand-written on the bare sqlite3 module (the ceiling):
                the same statements, columns and transactions as app.queue, the same
                busy handler, and run options read once per run as app.queue caches them
  app.queue     claim_next_job + complete_job (what a worker calls)
  worker loop   `python -m worker --once` with the no-op executor (everything a worker does)

Every process imports, connects and compiles before the clock starts. The table shows the
median of the rounds; "/ceiling" is the median of each round's ratio to the raw ceiling
measured in that same round, so load from other work on the machine affects both sides.

    .venv/bin/python bench/queue_throughput.py [--jobs 4000] [--rounds 3] [--quick]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

LEASE_S = 60.0
BUSY_TIMEOUT_S = 30.0
CLAIM_SQL = """
UPDATE job SET status = 'running', attempts = attempts + 1, lease_token = ?, lease_owner = ?,
       lease_expires_at = ?, progress_epoch = NULL, progress_step = NULL, progress_loss = NULL,
       started_at = ?, updated_at = ?
WHERE id = (SELECT id FROM job WHERE status = 'queued'
            ORDER BY run_id, position, id LIMIT 1) AND status = 'queued'
RETURNING id, run_id, position, attempts, dose, "view", gridsize, train_data_path,
          test_data_path, log_path, artifact_dir
"""
ATTEMPT_SQL = """
INSERT INTO attempt (job_id, number, worker, lease_token, started_at, outcome)
VALUES (?, ?, ?, ?, ?, 'running')
"""
RUN_SQL = "SELECT training, execution, design FROM run WHERE id = ?"
COMPLETE_SQL = """
UPDATE job SET status = 'succeeded', lease_token = NULL, lease_owner = NULL,
       lease_expires_at = NULL, result = ?, error = NULL, finished_at = ?, updated_at = ?
WHERE id = ? AND status = 'running' AND lease_token = ?
"""
END_ATTEMPT_SQL = """
UPDATE attempt SET ended_at = ?, outcome = 'succeeded', error = NULL
WHERE job_id = ? AND lease_token = ?
"""
RESULT = {"status": "succeeded"}

Drain = Callable[[], int]


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


def _stamp(moment: datetime) -> str:
    """How SQLAlchemy stores a UTC datetime on SQLite."""
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")


def prepare_raw(url: str, name: str) -> Drain:
    """The ceiling: the queue's statements and transactions on the bare sqlite3 module."""
    conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON"):
        conn.execute(f"PRAGMA {pragma}")
    conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
    options: dict[int, tuple[Any, ...]] = {}

    def drain() -> int:
        done = 0
        while True:
            now = datetime.now(UTC)
            stamp, expires = _stamp(now), _stamp(now + timedelta(seconds=LEASE_S))
            token = uuid.uuid4().hex
            conn.execute("BEGIN IMMEDIATE")
            rows = conn.execute(CLAIM_SQL, (token, name, expires, stamp, stamp)).fetchall()
            if not rows:
                conn.execute("COMMIT")
                return done
            job_id, run_id, _, attempts = rows[0][:4]
            conn.execute(ATTEMPT_SQL, (job_id, attempts, name, token, stamp))
            conn.execute("COMMIT")
            if run_id not in options:  # read once per run, outside the lock, as app.queue
                options[run_id] = conn.execute(RUN_SQL, (run_id,)).fetchone()
            stamp = _stamp(datetime.now(UTC))
            result = json.dumps(RESULT)
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(COMPLETE_SQL, (result, stamp, stamp, job_id, token))
            conn.execute(END_ATTEMPT_SQL, (stamp, job_id, token))
            conn.execute("COMMIT")
            done += 1

    return drain


def prepare_queue(url: str, name: str) -> Drain:
    """What a worker calls, without the worker around it."""
    from app import queue
    from app.core.db import make_engine

    engine = make_engine(url, busy_timeout_ms=int(BUSY_TIMEOUT_S * 1000))
    queue.warm_up(engine)

    def drain() -> int:
        done = 0
        while job := queue.claim_next_job(engine=engine, worker=name, lease_s=LEASE_S):
            queue.complete_job(
                engine=engine, job_id=job.job_id, lease_token=job.lease_token, result=RESULT
            )
            done += 1
        return done

    return drain


def _child(prepare: Callable[[str, str], Drain], url: str, name: str, ready: Any, out: Any) -> None:
    drain = prepare(url, name)
    ready.wait()  # every process is imported, connected and compiled
    out.put(drain())


def run_processes(
    prepare: Callable[[str, str], Drain], url: str, processes: int
) -> tuple[int, float]:
    """Drain with `processes` processes released together; (jobs done, seconds)."""
    context = multiprocessing.get_context("spawn")
    ready, out = context.Barrier(processes + 1), context.Queue()
    children = [
        context.Process(target=_child, args=(prepare, url, f"bench:{i}", ready, out))
        for i in range(processes)
    ]
    for child in children:
        child.start()
    ready.wait(timeout=120)
    began = time.perf_counter()
    done = sum(out.get(timeout=300) for _ in children)
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


def check_drained(url: str, n_jobs: int, label: str) -> None:
    """Every job succeeded once, with one succeeded attempt: a fast wrong queue fails here."""
    conn = sqlite3.connect(url.removeprefix("sqlite:///"))
    try:
        jobs = conn.execute(
            "SELECT count(*) FROM job WHERE status = 'succeeded' AND attempts = 1"
        ).fetchone()[0]
        attempts = conn.execute(
            "SELECT count(*), count(DISTINCT job_id) FROM attempt WHERE outcome = 'succeeded'"
        ).fetchone()
    finally:
        conn.close()
    if (jobs, *attempts) != (n_jobs, n_jobs, n_jobs):
        raise SystemExit(f"{label}: {jobs} jobs succeeded once, attempts {attempts}; want {n_jobs}")


class NoopExecutor:
    """Finishes every job at once, in the worker process (loaded by `run_worker_loop`)."""

    def __init__(self, settings: object) -> None:
        from worker.executors.base import Outcome

        self._outcome = Outcome("succeeded", result=RESULT)

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


Sample = tuple[int, float]  # (jobs done, seconds)


def measure(
    root: Path, n_jobs: int, rounds: int, loop: bool
) -> dict[tuple[str, int], list[Sample]]:
    """Every configuration `rounds` times, interleaved so that load shifts hit each alike."""
    samples: dict[tuple[str, int], list[Sample]] = {}
    for round_ in range(rounds):
        for processes in (1, 4):
            for label, prepare in (("raw sqlite3", prepare_raw), ("app.queue", prepare_queue)):
                url = make_database(root / f"{label[:3]}{processes}_{round_}.db", n_jobs)
                sample = run_processes(prepare, url, processes)
                check_drained(url, n_jobs, label)
                samples.setdefault((label, processes), []).append(sample)
            if loop and round_ == 0:
                url = make_database(root / f"loop{processes}.db", n_jobs)
                samples[("worker loop*", processes)] = [run_worker_loop(url, root, processes)]
    return samples


def print_table(samples: dict[tuple[str, int], list[Sample]], n_jobs: int, rounds: int) -> None:
    print(f"\nclaim + complete of {n_jobs} no-op jobs on SQLite (WAL, synchronous=NORMAL)")
    print(f"median of {rounds} round(s); every round's rates in brackets\n")
    print(f"{'path':<14}{'procs':>6}{'jobs/s':>9}{'/ceiling':>10}   rounds (jobs/s)")
    for processes in (1, 4):
        raw = [done / seconds for done, seconds in samples[("raw sqlite3", processes)]]
        for (label, procs), runs in samples.items():
            if procs != processes:
                continue
            rates = [done / seconds for done, seconds in runs]
            ratios = [rate / ceiling for rate, ceiling in zip(rates, raw, strict=False)]
            every = ", ".join(f"{rate:.0f}" for rate in rates)
            print(
                f"{label:<14}{procs:>6}{statistics.median(rates):>9.0f}"
                f"{statistics.median(ratios):>10.2f}   [{every}]"
            )
    if any(label == "worker loop*" for label, _ in samples):
        print("* one round; includes process start-up (imports, fork server) and train.log lines")
    print("aim: app.queue >= 1000 jobs/s and >= 1/3 of the raw ceiling")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="1,000 jobs, 1 round, no loop rows")
    args = parser.parse_args()
    n_jobs = 1000 if args.quick else args.jobs
    rounds = 1 if args.quick else args.rounds
    with tempfile.TemporaryDirectory() as tmp:
        samples = measure(Path(tmp), n_jobs, rounds, loop=not args.quick)
    print_table(samples, n_jobs, rounds)


if __name__ == "__main__":
    main()
