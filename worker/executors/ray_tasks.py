"""The Ray executor: each attempt is one Ray task on the cluster this worker joins.

The task trains the job with `worker.training.train`, reporting progress and reading stop
requests through the attempt's files (the cluster shares the artifact root with the
worker), and returns the result. Ray never retries it (`max_retries=0`): a task whose Ray
worker dies ends this attempt failed, and the queue makes the new attempt, which resumes
from the job's `last.ckpt`, so the database stays the one record of every attempt.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
from typing import TYPE_CHECKING, Any, ClassVar

from app.core.config import Settings
from app.core.files import write_json_atomic
from app.queue import ClaimedJob, Progress
from worker.executors.attempt_files import AttemptFiles, ProgressWatch, cluster_options
from worker.executors.base import Execution, Outcome, is_final
from worker.executors.training import (
    RECONSTRUCT,
    build_job_config,
    build_train_config,
    check_job_paths,
    reconstruct_job,
)
from worker.reporting import append_log

if TYPE_CHECKING:
    import ray

logger = logging.getLogger(__name__)

BACKEND = "ray"
TASK_FILE = "task.json"
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def run_attempt(job: ClaimedJob, files: AttemptFiles, resume: bool) -> dict[str, Any]:
    """Runs in a Ray worker process: train (or reconstruct) the job, return its result."""
    from worker.training import train
    from worker.training.progress_file import FileReporter

    where = {"node": socket.gethostname(), "pid": os.getpid()}
    write_json_atomic(files.folder / TASK_FILE, where)  # who runs it, for people and tests
    reporter = FileReporter(files.progress, files.stop)
    if job.kind == RECONSTRUCT:
        return reconstruct_job(job, reporter)
    result: dict[str, Any] = train(build_train_config(job), reporter=reporter, resume=resume)
    return result


class RayExecution:
    """One attempt's Ray task, seen from the worker."""

    def __init__(self, ref: ray.ObjectRef[dict[str, Any]], files: AttemptFiles) -> None:
        self._ref = ref
        self._files = files
        self._progress = ProgressWatch(files.progress)
        self._outcome: Outcome | None = None

    def wait(self, timeout_s: float) -> Outcome | None:
        import ray

        if self._outcome is None:
            ready, _ = ray.wait([self._ref], timeout=max(timeout_s, 0.0))
            if ready:
                self._outcome = self._conclude()
        return self._outcome

    def take_progress(self) -> Progress | None:
        return self._progress.take()

    def request_stop(self) -> None:
        self._files.request_stop()

    def kill(self) -> None:
        import ray

        if self._outcome is None:
            ray.cancel(self._ref, force=True)  # ends the Ray worker process running it
            self._outcome = Outcome("failed", error="Ray task cancelled")

    def _conclude(self) -> Outcome:
        import ray
        from ray import exceptions

        try:
            result: dict[str, Any] = ray.get(self._ref)
        except exceptions.RayTaskError as exc:  # training raised: its traceback
            cause = exc.cause if isinstance(exc.cause, BaseException) else exc
            return Outcome("failed", error=f"the Ray task raised: {exc}", final=is_final(cause))
        except exceptions.NodeDiedError as exc:
            return Outcome("interrupted", error=f"the Ray node running the task died: {exc}")
        except exceptions.WorkerCrashedError as exc:
            error = (
                f"the Ray worker process running the task died (killed, or out of memory): {exc}"
            )
            return Outcome("failed", error=error)
        except exceptions.RayError as exc:
            return Outcome("failed", error=f"{type(exc).__name__}: {exc}")
        stopped = result.get("status") == "stopped"
        return Outcome("stopped" if stopped else "succeeded", result=result)


class RayExecutor:
    """Joins the Ray cluster at `ray_address`; runs each attempt as a task with its GPUs."""

    name: ClassVar[str] = "ray"

    def __init__(self, settings: Settings) -> None:
        import ray

        self._settings = settings
        if not ray.is_initialized():
            # Ray's core installs handlers that end the process on SIGTERM; the worker's own
            # (a graceful stop that releases the job) must stay in charge.
            handlers = {signum: signal.getsignal(signum) for signum in _STOP_SIGNALS}
            # Tasks' output stays in Ray's logs; a job's own log is its train.log.
            ray.init(
                address=settings.ray_address, log_to_driver=False, logging_level=logging.WARNING
            )
            for signum, handler in handlers.items():
                if handler is not None:
                    signal.signal(signum, handler)
        self._task = ray.remote(run_attempt)

    def start(self, job: ClaimedJob) -> Execution:
        """Write the attempt's files and submit its task; returns at once."""
        check_job_paths(job, self._settings.data_root)
        files = AttemptFiles.for_job(job, BACKEND)
        files.create(build_job_config(job))
        cluster = cluster_options(job)
        options = {
            "num_gpus": float(cluster.get("gpus", self._settings.ray_num_gpus)),
            "num_cpus": float(cluster.get("cpus", self._settings.ray_num_cpus)),
            "max_retries": 0,  # a retry is a new attempt, which the queue records
            "name": f"ptychojobs-{job.run_id}-{job.job_id}-{job.attempt}",
        }
        ref = self._task.options(**options).remote(job, files, job.attempt > 1)
        append_log(job.log_path, f"attempt {job.attempt} is Ray task {options['name']}")
        return RayExecution(ref, files)

    def close(self) -> None:
        """Leave the cluster; tasks this worker still owns end with it."""
        import ray

        if ray.is_initialized():
            ray.shutdown()
