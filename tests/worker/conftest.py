"""Fixtures for worker tests: short leases, fake executors, real worker processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from app.core.config import Settings

REPO = Path(__file__).resolve().parents[2]
# Short leases so that crashes are noticed in seconds; heartbeats well inside them.
FAST = {
    "lease_s": 2.0,
    "heartbeat_s": 0.3,
    "reaper_interval_s": 0.5,
    "poll_interval_s": 0.2,
    "cancel_grace_s": 1.0,
    "shutdown_grace_s": 5.0,
    "max_attempts": 3,
    "manifest_interval_s": 0.0,
    "executor": "tests.worker.fakes:SleepExecutor",
}


@pytest.fixture
def database_url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    """Settings for an in-process worker on this test's database."""
    return Settings(database_url=database_url, data_root=tmp_path, **FAST)  # type: ignore[arg-type]


class WorkerProcesses:
    """Starts `python -m worker` processes on the test's database; kills leftovers at the end."""

    def __init__(self, tmp_path: Path, database_url: str) -> None:
        self.tmp_path = tmp_path
        self.env = {
            **os.environ,
            "PTYCHOJOBS_DATABASE_URL": database_url,
            "PTYCHOJOBS_DATA_ROOT": str(tmp_path),
            "PTYCHOJOBS_LOG_LEVEL": "INFO",
            **{f"PTYCHOJOBS_{key.upper()}": str(value) for key, value in FAST.items()},
        }
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, *args: str, **settings: Any) -> subprocess.Popen[bytes]:
        env = dict(self.env)
        env.update({f"PTYCHOJOBS_{key.upper()}": str(value) for key, value in settings.items()})
        log = (self.tmp_path / f"worker{len(self.started)}.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "worker", *args], cwd=REPO, env=env, stdout=log, stderr=log
        )
        log.close()
        self.started.append(process)
        return process

    def logs(self) -> str:
        return "".join(path.read_text() for path in sorted(self.tmp_path.glob("worker*.log")))

    def kill_all(self) -> None:
        for process in self.started:
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)


@pytest.fixture
def workers(tmp_path: Path, database_url: str) -> Iterator[WorkerProcesses]:
    processes = WorkerProcesses(tmp_path, database_url)
    yield processes
    processes.kill_all()
