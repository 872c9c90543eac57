"""The SLURM executor: each attempt is one `sbatch` job; the worker that claimed it watches it.

The batch script runs the single-job trainer, `python -m worker.training --config ...`, in
the job's folder (a pty-chi reconstruction job runs `python -m worker.reconstruction`); the
worker polls the job's state every `slurm_poll_interval_s`, reads its progress file, asks it
to stop through a stop file and kills it with `scancel`. The worker stays the one writer of
the job's status: SLURM's states become an `Outcome` (table below), and a job SLURM requeues
or preempts ends this attempt; the queue then makes a new attempt, which resumes from the
job's `last.ckpt` (a reconstruction starts over).

| SLURM state                         | outcome                                  |
|-------------------------------------|------------------------------------------|
| PENDING, RUNNING, COMPLETING, ...   | still running                            |
| COMPLETED                           | the trainer's result.json (succeeded or stopped) |
| REQUEUED, PREEMPTED, NODE_FAIL, ... | interrupted: requeued, not counted       |
| CANCELLED (scancel from outside)    | failed: requeued until max_attempts      |
| FAILED, TIMEOUT, OUT_OF_MEMORY, ... | failed, with the end of the job's output |
"""

from __future__ import annotations

import json
import logging
import shlex
import sys
import time
from pathlib import Path
from typing import Any, ClassVar

from app.core.config import Settings
from app.queue import ClaimedJob, Progress
from worker.executors.attempt_files import AttemptFiles, ProgressWatch, cluster_options, tail
from worker.executors.base import BAD_INPUT_EXIT, Execution, Outcome
from worker.executors.slurm_client import REQUEUED_STATES, SlurmClient, SlurmError, SlurmJobState
from worker.executors.training import RECONSTRUCT, build_job_config, check_job_paths
from worker.reporting import append_log

logger = logging.getLogger(__name__)

BACKEND = "slurm"
JOB_ID_FILE = "slurm_job_id"
_INTERRUPTED_STATES = frozenset({"PREEMPTED", "NODE_FAIL", "BOOT_FAIL"})
TRAINING_MODULE = "worker.training"
RECONSTRUCTION_MODULE = "worker.reconstruction"  # starts afresh: it keeps no checkpoint


class SlurmExecution:
    """One attempt's SLURM job, seen from the worker."""

    def __init__(
        self,
        client: SlurmClient,
        slurm_id: str,
        files: AttemptFiles,
        job: ClaimedJob,
        poll_s: float,
    ) -> None:
        self.slurm_id = slurm_id
        self._client = client
        self._files = files
        self._result_path = Path(job.artifact_dir) / "result.json"
        self._output = files.folder / f"slurm-{slurm_id}.out"
        self._poll_s = poll_s
        self._next_poll = time.monotonic()
        self._progress = ProgressWatch(files.progress)
        self._outcome: Outcome | None = None

    def wait(self, timeout_s: float) -> Outcome | None:
        if self._outcome is not None:
            return self._outcome
        due_in_s = self._next_poll - time.monotonic()
        if due_in_s > 0:
            time.sleep(min(max(timeout_s, 0.0), due_in_s))
            if time.monotonic() < self._next_poll:
                return None
        self._next_poll = time.monotonic() + self._poll_s
        try:
            state = self._client.state(self.slurm_id)
        except SlurmError:  # slurmctld restarting, say: the job itself may be fine
            logger.warning("could not read the state of SLURM job %s", self.slurm_id, exc_info=True)
            return None
        self._outcome = self._conclude(state)
        return self._outcome

    def take_progress(self) -> Progress | None:
        return self._progress.take()

    def request_stop(self) -> None:
        self._files.request_stop()

    def kill(self) -> None:
        if self._outcome is None:
            self._client.cancel(self.slurm_id)
            self._outcome = Outcome("failed", error=f"SLURM job {self.slurm_id} cancelled")

    def _conclude(self, state: SlurmJobState | None) -> Outcome | None:
        job = f"SLURM job {self.slurm_id}"
        if state is None:
            return Outcome("failed", error=f"{job}: SLURM no longer knows it, and keeps no record")
        if state.state in REQUEUED_STATES or (state.active and state.restarts > 0):
            self._client.cancel(self.slurm_id)  # never two runs of one attempt
            return Outcome("interrupted", error=f"{job} was requeued by SLURM: {state.describe()}")
        if state.active:
            return None
        if state.state == "COMPLETED":
            return self._read_result(job)
        if state.state in _INTERRUPTED_STATES:
            return Outcome("interrupted", error=f"{job} ended {state.describe()}")
        if state.state == "CANCELLED":
            return Outcome("failed", error=f"{job} was cancelled outside ptychojobs (scancel)")
        output = tail(self._output)
        final = state.exit_code.partition(":")[0] == str(BAD_INPUT_EXIT)  # a broken data file
        return Outcome("failed", error=f"{job} ended {state.describe()}\n\n{output}", final=final)

    def _read_result(self, job: str) -> Outcome:
        try:
            result: dict[str, Any] = json.loads(self._result_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            output = tail(self._output)
            return Outcome("failed", error=f"{job} completed without a result: {exc}\n\n{output}")
        stopped = result.get("status") == "stopped"
        return Outcome("stopped" if stopped else "succeeded", result=result)


class SlurmExecutor:
    """Submits each attempt with `sbatch`; resources from the run's `execution.cluster`."""

    name: ClassVar[str] = "slurm"

    def __init__(self, settings: Settings, *, client: SlurmClient | None = None) -> None:
        self._settings = settings
        self._client = client or SlurmClient(settings.slurm_bin_dir)
        if not self._client.available():
            raise RuntimeError(
                f"sbatch not found (PTYCHOJOBS_SLURM_BIN_DIR={settings.slurm_bin_dir!r}); "
                "the SLURM executor runs where SLURM's commands do"
            )
        self._python = settings.slurm_python or sys.executable

    def start(self, job: ClaimedJob) -> Execution:
        """Write the attempt's files and submit it; returns once SLURM has accepted it."""
        check_job_paths(job, self._settings.data_root)
        self._cancel_leftovers(job)
        files = AttemptFiles.for_job(job, BACKEND)
        files.create(build_job_config(job))
        options = sbatch_options(job, self._settings, files)
        module = RECONSTRUCTION_MODULE if job.kind == RECONSTRUCT else TRAINING_MODULE
        script = write_script(files, self._python, options, resume=job.attempt > 1, module=module)
        slurm_id = self._client.submit(script, options)
        (files.folder / JOB_ID_FILE).write_text(slurm_id + "\n", encoding="utf-8")
        append_log(job.log_path, f"attempt {job.attempt} is SLURM job {slurm_id}")
        logger.info(
            "attempt %d submitted as SLURM job %s",
            job.attempt,
            slurm_id,
            extra={"run_id": job.run_id, "job_id": job.job_id},
        )
        poll_s = self._settings.slurm_poll_interval_s
        return SlurmExecution(self._client, slurm_id, files, job, poll_s)

    def close(self) -> None:
        """Nothing held: a running SLURM job is cancelled through its execution."""

    def _cancel_leftovers(self, job: ClaimedJob) -> None:
        """Cancel earlier attempts' SLURM jobs still alive (their worker died)."""
        for id_file in sorted(Path(job.artifact_dir, BACKEND).glob(f"attempt-*/{JOB_ID_FILE}")):
            slurm_id = id_file.read_text(encoding="utf-8").strip()
            try:
                state = self._client.state(slurm_id)
            except SlurmError:
                logger.warning("could not check SLURM job %s", slurm_id, exc_info=True)
                continue
            if state is not None and state.active:
                logger.warning("cancelling SLURM job %s of an earlier attempt", slurm_id)
                self._client.cancel(slurm_id)


def sbatch_options(job: ClaimedJob, settings: Settings, files: AttemptFiles) -> list[str]:
    """sbatch's options: the run's `execution.cluster` values, else the settings'."""
    cluster = cluster_options(job)
    options = [
        f"--job-name=ptychojobs-{job.run_id}-{job.job_id}-{job.attempt}",
        f"--output={files.folder / 'slurm-%j.out'}",
        f"--chdir={job.artifact_dir}",
        "--no-requeue",  # a requeue would be a second run nobody records: we requeue instead
        "--nodes=1",
        "--ntasks=1",
        f"--cpus-per-task={cluster.get('cpus', settings.slurm_cpus_per_task)}",
    ]
    for option, key, default in (
        ("--partition", "partition", settings.slurm_partition),
        ("--account", "account", settings.slurm_account),
        ("--time", "time_limit", settings.slurm_time_limit),
        ("--mem", "mem", settings.slurm_mem),
    ):
        if value := cluster.get(key, default):
            options.append(f"{option}={value}")
    gpus = int(cluster.get("gpus", settings.slurm_gpus))
    if gpus > 0:
        options.append(f"--gres=gpu:{gpus}")
    return [*options, *shlex.split(settings.slurm_sbatch_args)]


def write_script(
    files: AttemptFiles,
    python: str,
    options: list[str],
    *,
    resume: bool,
    module: str = TRAINING_MODULE,
) -> Path:
    """The batch script, beside the attempt's other files (it records how it was submitted).

    It runs `python -m <module> --config ...`: the trainer, or the pty-chi reconstruction
    (which has no checkpoint, so no `--resume`).
    """
    resume = resume and module == TRAINING_MODULE
    trainer = [
        python,
        "-m",
        module,
        "--config",
        str(files.config),
        "--progress-file",
        str(files.progress),
        "--stop-file",
        str(files.stop),
        *(["--resume"] if resume else []),
    ]
    script = files.folder / "job.sh"
    script.write_text(
        "#!/bin/bash\n"
        f"# submitted with: sbatch {shlex.join(options)} {shlex.quote(str(script))}\n"
        'export OMP_NUM_THREADS="${SLURM_CPUS_PER_TASK:-1}"\n'
        # exec: SIGTERM from scancel or preemption reaches the trainer, which stops cleanly.
        f"exec {shlex.join(trainer)}\n",
        encoding="utf-8",
    )
    return script
