"""The executor seam: what the worker sees of a running job (outcome, progress, stop, kill),
and how a deployment names the executor that starts jobs (`Settings.executor`)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from app.core.config import Settings
from app.queue import ClaimedJob, Progress
from worker.training.config import ProgressReporter  # light: no torch

__all__ = ["Execution", "Executor", "Outcome", "ProgressReporter", "load_executor"]


@dataclass(frozen=True)
class Outcome:
    """How an attempt ended: `stopped` means training honoured a stop request."""

    status: Literal["succeeded", "stopped", "failed"]
    result: dict[str, Any] | None = None
    error: str | None = None


class Execution(Protocol):
    """One attempt in flight, wherever it runs (a child process today, a Ray task later)."""

    def wait(self, timeout_s: float) -> Outcome | None:
        """Block up to `timeout_s`; the outcome once the attempt ended, else None."""
        ...

    def take_progress(self) -> Progress | None:
        """The latest progress not yet taken, if any."""
        ...

    def request_stop(self) -> None:
        """Ask training to stop at its next step."""
        ...

    def kill(self) -> None:
        """End the attempt now; a no-op once it ended."""
        ...


class Executor(Protocol):
    """Starts attempts; one instance per worker process, built before the first claim."""

    def start(self, job: ClaimedJob) -> Execution:
        """Begin running `job`; raising fails the attempt with the exception's text."""
        ...

    def close(self) -> None:
        """Release what the executor holds (processes, connections)."""
        ...


ExecutorFactory = Callable[[Settings], Executor]


def load_executor(settings: Settings) -> Executor:
    """Build the executor named by `settings.executor` ("module:attr")."""
    module_name, _, attribute = settings.executor.partition(":")
    if not module_name or not attribute:
        raise ValueError(
            f"PTYCHOJOBS_EXECUTOR: expected 'module:attribute', got {settings.executor!r}"
        )
    factory: ExecutorFactory = getattr(importlib.import_module(module_name), attribute)
    return factory(settings)
