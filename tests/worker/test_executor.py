"""Executors: the fork-server child and its outcomes, and the real training executor."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from app.core.config import Settings
from app.queue import ClaimedJob
from app.study.simulate import SimulationConfig, simulate_phase_c
from tests.worker.conftest import WorkerProcesses
from tests.worker.fakes import (
    crash_job,
    grandchild_job,
    insert_run,
    jobs_of,
    sleep_job,
    wait_for,
)
from worker.executors.base import Execution, Outcome, load_executor
from worker.executors.forkserver import ChildProcessExecutor
from worker.executors.training import build_train_config


def claimed(tmp_path: Path, **training: Any) -> ClaimedJob:
    return ClaimedJob(
        job_id=7,
        run_id=3,
        position=0,
        lease_token="token",
        attempt=1,
        worker="test:1",
        dose=1e4,
        view="dense",
        gridsize=2,
        train_data_path=str(tmp_path / "dense_train.npz"),
        test_data_path=str(tmp_path / "dense_test.npz"),
        log_path=str(tmp_path / "train.log"),
        artifact_dir=str(tmp_path),
        training=training,
        execution={"accelerator": "cpu", "logger": "none"},
        design={"neighbor_count": 6, "doses": [1e4]},
    )


def finish(execution: Execution, timeout_s: float = 30.0) -> Outcome:
    outcome = wait_for(lambda: execution.wait(0.1), timeout_s=timeout_s, what="the child")
    assert isinstance(outcome, Outcome)
    return outcome


def test_exception_in_child_is_reported_with_type_and_traceback(tmp_path: Path) -> None:
    executor = ChildProcessExecutor(crash_job, preload=("tests.worker.fakes",))

    outcome = finish(executor.start(claimed(tmp_path, crash="raise")))

    assert outcome.status == "failed"
    assert outcome.error is not None
    assert outcome.error.startswith(f"ValueError: probe missing in {tmp_path}/dense_train.npz")
    assert "Traceback" in outcome.error
    assert "crash_job" in outcome.error


@pytest.mark.parametrize(
    ("crash", "cause"),
    [
        ("exit", "training process exited with code 3 without a result"),
        ("segfault", "training process killed by SIGSEGV"),
    ],
)
def test_child_that_dies_without_result_is_described(
    tmp_path: Path, crash: str, cause: str
) -> None:
    executor = ChildProcessExecutor(crash_job, preload=("tests.worker.fakes",))

    outcome = finish(executor.start(claimed(tmp_path, crash=crash)))

    assert outcome == Outcome("failed", error=cause)


def test_progress_and_result_come_through_the_pipe(tmp_path: Path) -> None:
    executor = ChildProcessExecutor(sleep_job, preload=("tests.worker.fakes",))
    execution = executor.start(claimed(tmp_path, sleep_s=0.4, steps=4))
    seen = []

    def progress_or_outcome() -> Outcome | None:
        outcome = execution.wait(0.05)
        if (progress := execution.take_progress()) is not None:
            seen.append(progress)
        return outcome

    outcome = wait_for(progress_or_outcome, timeout_s=30, what="the child")

    assert outcome.status == "succeeded"
    assert outcome.result["lease_token"] == "token"
    assert seen
    assert all(p.loss == 1.0 / p.step and (p.epoch, p.epochs) == (1, 1) for p in seen)
    assert [p.step for p in seen] == sorted({p.step for p in seen})


def test_stop_request_reaches_the_child(tmp_path: Path) -> None:
    executor = ChildProcessExecutor(sleep_job, preload=("tests.worker.fakes",))
    execution = executor.start(claimed(tmp_path, sleep_s=60.0, steps=600))
    wait_for(lambda: execution.wait(0.05) or execution.take_progress(), what="progress")

    execution.request_stop()

    assert finish(execution).status == "stopped"


def test_kill_takes_the_childs_own_processes_too(tmp_path: Path) -> None:
    executor = ChildProcessExecutor(grandchild_job, preload=("tests.worker.fakes",))
    execution = executor.start(claimed(tmp_path))
    pid_file = tmp_path / "grandchild.pid"
    wait_for(lambda: execution.wait(0.05) or execution.take_progress(), what="progress")
    helper = int(pid_file.read_text())

    execution.kill()

    outcome = finish(execution)
    assert outcome.error is not None
    assert outcome.error.startswith("training process killed by SIGKILL")
    wait_for(lambda: not _alive(helper), timeout_s=10, what=f"pid {helper} to end")


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def test_train_config_comes_from_job_design_and_run_options(tmp_path: Path) -> None:
    config = build_train_config(claimed(tmp_path, epochs=2, batch_size=8, lr=0.01))

    assert (config.train_path, config.test_path) == (
        tmp_path / "dense_train.npz",
        tmp_path / "dense_test.npz",
    )
    assert (config.out_dir, config.log_path) == (tmp_path, tmp_path / "train.log")
    assert (config.gridsize, config.nphotons, config.neighbor_count) == (2, 1e4, 6)
    assert (config.epochs, config.batch_size, config.lr) == (2, 8, 0.01)
    assert (config.accelerator, config.logger) == ("cpu", "none")
    assert config.label == "run 3, job 7, dense"  # titles the reconstruction figure


def test_executor_setting_must_name_module_and_attribute(settings: Settings) -> None:
    broken = settings.model_copy(update={"executor": "worker.executors.training.TrainingExecutor"})
    with pytest.raises(ValueError, match="PTYCHOJOBS_EXECUTOR: expected 'module:attribute'"):
        load_executor(broken)


@pytest.mark.slow
def test_real_training_job_in_a_worker_process(
    workers: WorkerProcesses, engine: Engine, tmp_path: Path
) -> None:
    # ~30 positions per split: one step of training, then evaluation and the bundle.
    small = SimulationConfig(object_size=160, n_positions=64, doses=(1e3,), write_patches=False)
    phase_c = tmp_path / "study" / "phase_c"
    simulate_phase_c(small, phase_c, workers=1)
    training = {"epochs": 1, "batch_size": 64}
    run_id = insert_run(engine, tmp_path, 1, training=training)
    outside = insert_run(engine, tmp_path / "elsewhere", 1, max_attempts=1)
    _point_jobs_at(engine, run_id, phase_c / "dose_1000")
    _point_jobs_at(engine, outside, Path("/etc"))

    worker = workers.start("--once", executor="worker.executors.training:TrainingExecutor")

    assert worker.wait(timeout=300) == 0, workers.logs()
    [job] = jobs_of(engine, run_id)
    assert job.status == "succeeded", job.error
    assert job.result is not None
    assert job.result["status"] == "succeeded"
    bundle = Path(job.artifact_dir) / job.result["bundle_path"]
    assert hashlib.sha256(bundle.read_bytes()).hexdigest() == job.result["bundle_sha256"]
    assert job.progress_step is not None
    assert job.progress_step >= 1
    log = Path(job.log_path).read_text()
    assert "attempt 1 started on worker" in log
    assert "done status=succeeded" in log
    manifest = json.loads((tmp_path / "artifacts" / "training_manifest.json").read_text())
    assert job.result["bundle_sha256"] in json.dumps(manifest)
    [refused] = jobs_of(engine, outside)
    assert refused.status == "failed"
    assert refused.error is not None
    assert "lies outside the root" in refused.error


def _point_jobs_at(engine: Engine, run_id: int, folder: Path) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "UPDATE job SET train_data_path = ?, test_data_path = ? WHERE run_id = ?",
            (str(folder / "patched_train.npz"), str(folder / "patched_test.npz"), run_id),
        )
        conn.exec_driver_sql(
            "UPDATE run SET execution = ? WHERE id = ?",
            (json.dumps({"accelerator": "cpu", "logger": "none"}), run_id),
        )
