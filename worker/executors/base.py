"""The executor seam: what the worker sees of a running job (outcome, progress, stop, kill),
and how a deployment names the executor that starts jobs (`Settings.executor`)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from app.core.config import Settings
from app.queue import ClaimedJob, Progress
from app.study.contract import BAD_INPUT_EXIT, ContractError
from worker.training.config import ProgressReporter  # light: no torch

__all__ = [
    "BAD_INPUT_EXIT",
    "EXECUTORS",
    "Execution",
    "Executor",
    "Outcome",
    "ProgressReporter",
    "executor_name",
    "is_final",
    "load_executor",
]


@dataclass(frozen=True)
class Outcome:
    """How an attempt ended: `stopped` means training honoured a stop request; `interrupted`
    means the cluster took the attempt away (preemption, a requeue, a lost node), which
    requeues the job without counting the attempt. `final`: a failure that another attempt
    would repeat (a data file that breaks the contract), so the job fails at once."""

    status: Literal["succeeded", "stopped", "failed", "interrupted"]
    result: dict[str, Any] | None = None
    error: str | None = None
    final: bool = False


def is_final(exc: BaseException) -> bool:
    """Whether another attempt would fail the same way: the input itself is broken."""
    return isinstance(exc, ContractError)


class Execution(Protocol):
    """One attempt in flight, wherever it runs (a child process, a SLURM job, a Ray task)."""

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

# Short names for `PTYCHOJOBS_EXECUTOR`.
EXECUTORS = {
    "local": "worker.executors.training:TrainingExecutor",
    "slurm": "worker.executors.slurm:SlurmExecutor",
    "ray": "worker.executors.ray_tasks:RayExecutor",
}


def load_executor(settings: Settings) -> Executor:
    """Build the executor named by `settings.executor` (a short name or "module:attr")."""
    spec = EXECUTORS.get(settings.executor, settings.executor)
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ValueError(
            f"PTYCHOJOBS_EXECUTOR: expected 'module:attribute' or one of "
            f"{', '.join(EXECUTORS)}, got {settings.executor!r}"
        )
    factory: ExecutorFactory = getattr(importlib.import_module(module_name), attribute)
    return factory(settings)


def executor_name(executor: Executor) -> str:
    """What the attempts table records: the executor's `name` (local, slurm, ray) or class."""
    name = getattr(executor, "name", None)
    return name if isinstance(name, str) else type(executor).__name__
