"""Start and stop the service's processes (API, worker) as children, for the CLI and demo."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import IO

from app.core.launch import worker_argv

logger = logging.getLogger(__name__)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def service_env(*, data_root: Path, database_url: str, **extra: str) -> dict[str, str]:
    """This process's environment with the service's settings replaced."""
    env = dict(os.environ)
    env["PTYCHOJOBS_DATA_ROOT"] = str(data_root)
    env["PTYCHOJOBS_DATABASE_URL"] = database_url
    env.update({f"PTYCHOJOBS_{key.upper()}": value for key, value in extra.items()})
    return env


def start_api(
    *, host: str, port: int, env: Mapping[str, str], output: IO[bytes] | None = None
) -> subprocess.Popen[bytes]:
    """`ptychojobs serve` in a child process."""
    argv = [sys.executable, "-m", "app.cli", "serve", "--host", host, "--port", str(port)]
    return _start(argv, env, output)


def start_worker(
    *, env: Mapping[str, str], workers: int = 1, gpus: str = "", output: IO[bytes] | None = None
) -> subprocess.Popen[bytes]:
    """`python -m worker` in a child process (app never imports the worker package)."""
    return _start(worker_argv(workers=workers, gpus=gpus), env, output)


def _start(
    argv: list[str], env: Mapping[str, str], output: IO[bytes] | None
) -> subprocess.Popen[bytes]:
    logger.info("starting %s", " ".join(argv))
    stderr = subprocess.STDOUT if output is not None else None
    # A process group of its own: Ctrl-C reaches only the parent, which then stops the
    # child with SIGTERM and its grace period instead of a double signal.
    return subprocess.Popen(argv, env=dict(env), stdout=output, stderr=stderr, process_group=0)


def stop_process(process: subprocess.Popen[bytes], *, grace_s: float) -> int:
    """SIGTERM, wait up to `grace_s`, then SIGKILL; returns the exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            logger.warning("process %d ignored SIGTERM for %.0fs; killing it", process.pid, grace_s)
            process.kill()
    return process.wait()
