"""`python -m worker --workers N [--gpus 0,1] [--once]`: start worker processes.

With one worker (or one GPU) this process is the worker; with more, it supervises one
worker process per GPU (`CUDA_VISIBLE_DEVICES` pinned) or N CPU worker processes.
"""

from __future__ import annotations

import argparse
import os
import socket

from app.core.config import Settings, get_settings
from app.core.db import make_engine
from app.core.logging import configure_logging
from worker.executors.base import load_executor
from worker.loop import Worker
from worker.signals import StopSignal
from worker.supervisor import supervise


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m worker", description=__doc__)
    parser.add_argument("--workers", type=int, default=1, help="CPU workers (without --gpus)")
    parser.add_argument("--gpus", default="", help="comma-separated GPU ids: one worker each")
    parser.add_argument("--once", action="store_true", help="exit when the queue is empty")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error("--workers: expected at least 1")
    return args


def run_worker(settings: Settings, *, gpu: str | None, once: bool, stop: StopSignal) -> None:
    """This process as one worker (pinned to `gpu` when given)."""
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu  # before the fork server imports torch
    name = f"{socket.gethostname()}:{os.getpid()}" + (f":{gpu}" if gpu is not None else "")
    # The executor starts its fork server before this process opens a database connection.
    executor = load_executor(settings)
    engine = make_engine(
        settings.resolved_database_url, busy_timeout_ms=settings.sqlite_busy_timeout_ms
    )
    try:
        Worker(
            settings=settings, engine=engine, executor=executor, name=name, once=once, stop=stop
        ).run()
    finally:
        executor.close()
        engine.dispose()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = get_settings()
    configure_logging(settings.log_level)
    stop = StopSignal().install()
    gpus: list[str | None] = [g.strip() for g in args.gpus.split(",") if g.strip()]
    if not gpus:
        gpus = [None] * args.workers
    if len(gpus) > 1:
        return supervise(gpus, once=args.once, stop=stop)
    run_worker(settings, gpu=gpus[0], once=args.once, stop=stop)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
