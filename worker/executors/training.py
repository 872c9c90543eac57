"""The default executor: train each job with `worker.training.train` in a forked child.

`Settings.executor` names the factory ("module:attr", called with the settings), so a
deployment can plug in another backend (a Ray task per job, say) and tests can plug in
fakes; the worker loop only sees the `Executor` and `Execution` protocols (`base`).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

from app.core.config import Settings
from app.options import ENGINE_BATCH_SIZE
from app.paths import check_confined
from app.queue import ClaimedJob
from app.study.npz import ReadLimits, read_limits
from worker.executors.base import Execution, ProgressReporter
from worker.executors.forkserver import ChildProcessExecutor, JobTarget
from worker.reconstruction import ReconstructConfig  # light, as TrainConfig
from worker.training import TrainConfig  # light: torch loads with `train`, in the child

__all__ = [
    "CLUSTER_KEY",
    "RECONSTRUCT",
    "TrainingExecutor",
    "build_job_config",
    "build_train_config",
    "check_job_paths",
    "train_job",
]

# The run's `execution` key for cluster resources (SLURM, Ray); the other keys are TrainConfig's.
CLUSTER_KEY = "cluster"
RECONSTRUCT = "reconstruct"  # a job's kind for a pty-chi reconstruction

# Imported once by the fork server, so a job's child starts with them warm.
TRAINING_PRELOAD = ("torch", "lightning", "worker.training.runner", "worker.executors.training")
PTYCHI_PRELOAD = ("ptychi.api",)  # its import leaves torch's process state as it was


class TrainingExecutor(ChildProcessExecutor):
    """Trains each job with `worker.training.train` in a child of a warm fork server."""

    name: ClassVar[str] = "local"

    def __init__(
        self,
        settings: Settings,
        *,
        target: JobTarget | None = None,
        preload: Sequence[str] | None = None,
    ) -> None:
        limits = ReadLimits(root=settings.data_root, max_member_bytes=settings.max_npz_member_bytes)
        if preload is None:
            preload = TRAINING_PRELOAD + (PTYCHI_PRELOAD if settings.preload_ptychi else ())
        super().__init__(target or partial(train_job, limits=limits), preload=preload)
        self._data_root = settings.data_root

    def start(self, job: ClaimedJob) -> Execution:
        check_job_paths(job, self._data_root)
        return super().start(job)


def check_job_paths(job: ClaimedJob, data_root: Path) -> None:
    """Check the job's paths again before touching them: inside the data root, no symlink.

    PathRefused when one leaves the root or goes through a symlink (one swapped in after
    submit, say). The data files are read, race-free, through `ReadLimits(root=...)`.
    """
    for field in ("train_data_path", "test_data_path", "artifact_dir", "log_path"):
        check_confined(Path(getattr(job, field)), root=data_root)


def build_train_config(job: ClaimedJob) -> TrainConfig:
    """The job's `TrainConfig`: its data and dose, the design's K, the run's options."""
    design = {key: job.design[key] for key in ("neighbor_count",) if key in job.design}
    execution = {key: value for key, value in job.execution.items() if key != CLUSTER_KEY}
    return TrainConfig(
        train_path=Path(job.train_data_path),
        test_path=Path(job.test_data_path),
        out_dir=Path(job.artifact_dir),
        gridsize=job.gridsize,
        nphotons=job.dose,
        log_path=Path(job.log_path),
        label=f"run {job.run_id}, job {job.job_id}, {job.view}",
        **design,
        **job.training,
        **execution,
    )


def train_job(
    job: ClaimedJob, reporter: ProgressReporter, *, limits: ReadLimits | None = None
) -> dict[str, Any]:
    """Runs in the child: train the job, return its result; a retry resumes where it stopped.

    With `limits`, the paths are checked once more here, and the data files are opened
    confined to `limits.root` with their arrays size-capped.
    """
    from worker.training import train

    limits = limits or ReadLimits()
    if limits.root is not None:
        check_job_paths(job, limits.root)
    if job.kind == RECONSTRUCT:
        with read_limits(limits):
            return reconstruct_job(job, reporter)
    config = build_train_config(job)
    with read_limits(limits):
        result: dict[str, Any] = train(config, reporter=reporter, resume=job.attempt > 1)
    return result


def build_reconstruct_config(job: ClaimedJob) -> ReconstructConfig:
    """The reconstruction job's `ReconstructConfig`: its split and dose, the run's options."""
    options = job.reconstruction
    engine = job.engine or "lsqml"
    accelerator = job.execution.get("accelerator", "auto")
    return ReconstructConfig(
        input_npz=Path(job.train_data_path if job.split == "train" else job.test_data_path),
        out_dir=Path(job.artifact_dir),
        engine=engine,
        epochs=int(options.get("epochs", 100)),
        batch_size=int(options.get("batch_size") or ENGINE_BATCH_SIZE[engine]),
        noise_model=str(options.get("noise_model", "gaussian")),
        probe_trainable=bool(options.get("probe_trainable", False)),
        nphotons=job.dose,
        accelerator="gpu" if accelerator == "cuda" else accelerator,
        log_path=Path(job.log_path),
        label=f"run {job.run_id}, job {job.job_id}, {job.view} {job.split}",
    )


def build_job_config(job: ClaimedJob) -> TrainConfig | ReconstructConfig:
    """What the job's process runs: a `TrainConfig`, or a `ReconstructConfig` by its kind."""
    return build_reconstruct_config(job) if job.kind == RECONSTRUCT else build_train_config(job)


def reconstruct_job(job: ClaimedJob, reporter: ProgressReporter) -> dict[str, Any]:
    """A pty-chi reconstruction of the job's split with the run's reconstruction options."""
    from worker.reconstruction import reconstruct

    result: dict[str, Any] = reconstruct(build_reconstruct_config(job), reporter=reporter)
    return result
