"""How a job's training is run: the `Executor` seam and the default `TrainingExecutor`.

`Settings.executor` names the factory ("module:attr", called with the settings), so a
deployment can plug in another backend (a Ray task per job, say) and tests can plug in
fakes; the worker loop only sees the `Executor` and `Execution` protocols.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from app.core.config import Settings
from app.paths import resolve_inside
from app.queue import ClaimedJob
from worker.child import ChildProcessExecutor, JobTarget
from worker.execution import Execution, Outcome, ProgressReporter
from worker.training import TrainConfig  # light: torch loads with `train`, in the child

__all__ = [
    "Execution",
    "Executor",
    "Outcome",
    "ProgressReporter",
    "TrainingExecutor",
    "build_train_config",
    "load_executor",
    "train_job",
]

# Imported once by the fork server, so a job's child starts with them warm.
TRAINING_PRELOAD = ("torch", "lightning", "worker.training.runner", "worker.executor")


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


class TrainingExecutor(ChildProcessExecutor):
    """Trains each job with `worker.training.train` in a child of a warm fork server."""

    def __init__(
        self,
        settings: Settings,
        *,
        target: JobTarget | None = None,
        preload: Sequence[str] = TRAINING_PRELOAD,
    ) -> None:
        super().__init__(target or train_job, preload=preload)
        self._data_root = settings.data_root

    def start(self, job: ClaimedJob) -> Execution:
        # Paths were checked when the run was created; check again before touching them.
        for field in ("train_data_path", "test_data_path", "artifact_dir", "log_path"):
            resolve_inside(getattr(job, field), field=field, data_root=self._data_root)
        return super().start(job)


def build_train_config(job: ClaimedJob) -> TrainConfig:
    """The job's `TrainConfig`: its data and dose, the design's K, the run's options."""
    design = {key: job.design[key] for key in ("neighbor_count",) if key in job.design}
    return TrainConfig(
        train_path=Path(job.train_data_path),
        test_path=Path(job.test_data_path),
        out_dir=Path(job.artifact_dir),
        gridsize=job.gridsize,
        nphotons=job.dose,
        log_path=Path(job.log_path),
        **design,
        **job.training,
        **job.execution,
    )


def train_job(job: ClaimedJob, reporter: ProgressReporter) -> dict[str, Any]:
    """Runs in the child: train the job, return its result."""
    from worker.training import train

    result: dict[str, Any] = train(build_train_config(job), reporter=reporter)
    return result
