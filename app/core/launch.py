"""The `python -m worker` command line, built here only.

`app` never imports the worker package, so the CLI, the demo and the worker supervisor all
start workers as processes with this argv.
"""

from __future__ import annotations

import sys


def worker_argv(*, workers: int = 1, gpus: str | None = None, once: bool = False) -> list[str]:
    """argv for `python -m worker` with `workers` CPU workers or one worker per GPU id."""
    argv = [sys.executable, "-m", "worker", "--workers", str(workers)]
    if gpus:
        argv += ["--gpus", gpus]
    if once:
        argv.append("--once")
    return argv
