"""`ptychojobs worker`: hands over to the torch side (`python -m worker`).

`app` never imports torch or the worker package, so the command replaces this process
with the worker's own entry point instead of importing it.
"""

from __future__ import annotations

import os
import sys

import typer

from app.core.launch import worker_argv


def worker(
    gpus: str = typer.Option("", help="Comma-separated GPU ids: one worker process per GPU"),
    workers: int = typer.Option(1, min=1, help="CPU worker processes when --gpus is empty"),
    once: bool = typer.Option(False, help="Exit when the queue is empty"),
) -> None:
    """Start worker processes that claim and train queued jobs."""
    os.execv(sys.executable, worker_argv(workers=workers, gpus=gpus, once=once))


def register(cli: typer.Typer) -> None:
    cli.command()(worker)
