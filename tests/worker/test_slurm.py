"""The SLURM executor against a real single-node SLURM (munged, slurmctld, slurmd).

`.ci/slurm.sh start` starts SLURM on this machine when it is installed but not running; the
tests that need it are skipped, with the reason, where SLURM is not installed or cannot
start (`.ci/run` installs it in CI).
"""

from __future__ import annotations

import json
import shlex
import subprocess
import time
from pathlib import Path

import pytest
from pydantic import ValidationError

from app.core.config import Settings
from app.options import ExecutionOptions
from app.queue import ClaimedJob
from tests.worker.cluster_study import (
    EPOCHS,
    STUDY_TIMEOUT_S,
    assert_failed_at_once,
    assert_study_succeeded,
    kill_first_checkpointed,
    study_services,
    submit_demo_study,
)
from worker.executors.attempt_files import AttemptFiles
from worker.executors.slurm import RECONSTRUCTION_MODULE, sbatch_options, write_script
from worker.executors.slurm_client import SlurmClient, parse_scontrol

REPO = Path(__file__).resolve().parents[2]
SCONTROL_LINE = (
    "JobId=7 JobName=ptychojobs-1-2-1 UserId=root(0) JobState=CANCELLED Reason=None "
    "Dependency=(null) Requeue=0 Restarts=0 BatchFlag=1 Reboot=0 ExitCode=0:15 RunTime=00:00:03"
)


@pytest.fixture(scope="session")
def slurm() -> SlurmClient:
    """A SLURM that answers, started by .ci/slurm.sh if needed; skips when there is none."""
    client = SlurmClient()
    if not client.available():
        pytest.skip("SLURM is not installed here (.ci/slurm.sh install installs it)")
    started = subprocess.run(
        [str(REPO / ".ci" / "slurm.sh"), "start"], capture_output=True, text=True, timeout=180
    )
    idle = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True)
    if idle.returncode != 0 or not {"idle", "mix", "alloc"} & set(idle.stdout.split()):
        pytest.skip(f"SLURM cannot start here: {started.stderr.strip() or idle.stderr.strip()}")
    return client


def _job(tmp_path: Path, **execution: object) -> ClaimedJob:
    folder = tmp_path / "runs" / "1" / "job 2"  # a space: every path must survive quoting
    return ClaimedJob(
        job_id=2,
        run_id=1,
        position=0,
        lease_token="t",
        attempt=1,
        worker="w",
        dose=1e4,
        view="baseline",
        gridsize=1,
        train_data_path=str(tmp_path / "train.npz"),
        test_data_path=str(tmp_path / "test.npz"),
        log_path=str(folder / "train.log"),
        artifact_dir=str(folder),
        execution=dict(execution),
    )


def test_scontrol_line_gives_state_exit_code_and_restarts() -> None:
    state = parse_scontrol(SCONTROL_LINE)
    assert state is not None
    assert (state.state, state.exit_code, state.restarts, state.active) == (
        "CANCELLED",
        "0:15",
        0,
        False,
    )
    assert state.describe() == "CANCELLED (exit code 0:15)"
    assert parse_scontrol("slurm_load_jobs error: Invalid job id specified") is None


def test_sbatch_options_take_the_run_s_cluster_values_then_the_settings(tmp_path: Path) -> None:
    settings = Settings(
        data_root=tmp_path,
        slurm_partition="gpu",
        slurm_account="beamline",
        slurm_mem="16G",
        slurm_gpus=1,
        slurm_sbatch_args="--qos=high --constraint='a100|h100'",
    )
    job = _job(tmp_path, accelerator="gpu", cluster={"partition": "short", "gpus": 2, "cpus": 8})
    files = AttemptFiles.for_job(job, "slurm")
    options = sbatch_options(job, settings, files)
    assert "--partition=short" in options
    assert "--account=beamline" in options
    assert "--mem=16G" in options
    assert "--gres=gpu:2" in options
    assert "--cpus-per-task=8" in options
    assert "--no-requeue" in options
    assert not any(option.startswith("--time") for option in options)  # no limit set anywhere
    assert options[-2:] == ["--qos=high", "--constraint=a100|h100"]
    cpu_only = sbatch_options(_job(tmp_path, cluster={"gpus": 0}), settings, files)
    assert not any(option.startswith("--gres") for option in cpu_only)


@pytest.mark.parametrize(
    ("option", "value"),
    [("mem", "lots"), ("time_limit", "4h"), ("partition", "gpu; rm -rf /"), ("gpus", -1)],
)
def test_a_run_s_cluster_options_must_be_what_sbatch_accepts(option: str, value: object) -> None:
    with pytest.raises(ValidationError, match=option):
        ExecutionOptions.model_validate({"cluster": {option: value}})
    cluster = {"mem": "64G", "time_limit": "1-12:00:00", "partition": "a100", "gpus": 2}
    assert ExecutionOptions.model_validate({"cluster": cluster}).model_dump()["cluster"] == {
        **cluster,
        "cpus": None,
        "account": None,
    }


def test_batch_script_execs_the_trainer_and_resumes_from_the_second_attempt(
    tmp_path: Path,
) -> None:
    files = AttemptFiles(tmp_path / "job 2" / "slurm" / "attempt-2")
    files.folder.mkdir(parents=True)
    script = write_script(files, "/opt/py/bin/python", ["--mem=1G"], resume=True)
    exec_line = script.read_text().splitlines()[-1]
    argv = shlex.split(exec_line)
    assert argv[:4] == ["exec", "/opt/py/bin/python", "-m", "worker.training"]
    assert argv[argv.index("--config") + 1] == str(files.config)
    assert argv[argv.index("--stop-file") + 1] == str(files.stop)
    assert argv[-1] == "--resume"
    first = write_script(files, "python", [], resume=False)
    assert "--resume" not in first.read_text()


def test_a_reconstruction_s_batch_script_runs_pty_chi_afresh_on_every_attempt(
    tmp_path: Path,
) -> None:
    files = AttemptFiles(tmp_path / "job 2" / "slurm" / "attempt-2")
    files.folder.mkdir(parents=True)
    script = write_script(
        files, "python", [], resume=True, module=RECONSTRUCTION_MODULE
    ).read_text()
    argv = shlex.split(script.splitlines()[-1])
    assert argv[:4] == ["exec", "python", "-m", "worker.reconstruction"]
    assert argv[argv.index("--progress-file") + 1] == str(files.progress)
    assert "--resume" not in argv  # pty-chi keeps no checkpoint: a new attempt starts over


@pytest.mark.slow
def test_demo_study_runs_through_slurm_and_a_scancel_is_recovered(
    slurm: SlurmClient, tmp_path: Path
) -> None:
    settings = {"executor": "slurm", "slurm_poll_interval_s": "0.3", "heartbeat_s": "2"}
    with study_services(tmp_path, workers=2, **settings) as services:
        run = submit_demo_study(services, cluster={"gpus": 0, "cpus": 1, "time_limit": "10"})

        def scancel(id_file: Path) -> None:
            subprocess.run(["scancel", id_file.read_text().strip()], check=True)

        started = time.monotonic()
        killed = kill_first_checkpointed(run, "slurm/attempt-1/slurm_job_id", scancel)
        assert_study_succeeded(
            services, run, killed, "slurm", "was cancelled outside ptychojobs (scancel)"
        )
        print(f"SLURM study: {time.monotonic() - started:.0f} s")
    folder = Path(killed["artifact_dir"]) / "slurm"
    assert sorted(p.name for p in folder.iterdir()) == ["attempt-1", "attempt-2"]
    for attempt in folder.iterdir():  # each attempt's script and SLURM output in its folder
        assert (attempt / "job.sh").is_file()
        assert list(attempt.glob("slurm-*.out"))


@pytest.mark.slow
def test_cancelled_slurm_job_keeps_its_partial_result_and_a_retry_resumes_it(
    slurm: SlurmClient, tmp_path: Path
) -> None:
    settings = {"executor": "slurm", "slurm_poll_interval_s": "0.3", "heartbeat_s": "0.3"}
    with study_services(tmp_path, workers=1, cancel_grace_s="30", **settings) as services:
        client = services.client
        cluster = {"gpus": 0, "cpus": 1}
        run = submit_demo_study(services, cluster, epochs=EPOCHS + 3, view="baseline")
        [job] = run["jobs"]
        cancelled = kill_first_checkpointed(
            run, "slurm/attempt-1/slurm_job_id", lambda _: client.cancel_job(job["id"])
        )
        assert client.wait_for_run(run["id"], timeout_s=120, poll_s=0.3)["status"] == "cancelled"
        partial = client.job(cancelled["id"])
        assert [a["outcome"] for a in partial["attempt_history"]] == ["cancelled"]
        result = partial["result"]
        assert result["status"] == "stopped"
        assert result["epochs_completed"] < EPOCHS + 3
        folder = Path(partial["artifact_dir"])
        assert (folder / result["reconstruction_png"]).read_bytes()[:4] == b"\x89PNG"

        client.retry_run(run["id"])
        finished = client.wait_for_run(run["id"], timeout_s=STUDY_TIMEOUT_S, poll_s=0.5)
        retried = client.job(cancelled["id"])
        assert finished["status"] == "succeeded", retried
        epochs = [row["epoch"] for row in retried["result"]["history"]]
        assert epochs == list(range(1, EPOCHS + 4))
        log = Path(retried["log_path"]).read_text().split("attempt 2", 1)[1]
        assert "resuming from checkpoints/last.ckpt" in log


@pytest.mark.slow
def test_a_failed_node_ends_the_attempt_as_interrupted_and_the_job_resumes_uncounted(
    slurm: SlurmClient, tmp_path: Path
) -> None:
    node = subprocess.run(["sinfo", "-h", "-o", "%N"], capture_output=True, text=True).stdout
    settings = {"executor": "slurm", "slurm_poll_interval_s": "0.3", "heartbeat_s": "0.5"}
    with study_services(tmp_path, workers=1, **settings) as services:
        client = services.client
        run = submit_demo_study(services, cluster={"gpus": 0, "cpus": 1}, view="baseline")

        def fail_node(_: Path) -> None:  # as preemption or a lost node: not the job's fault
            down = ["scontrol", "update", f"nodename={node.strip()}", "state=down"]
            subprocess.run([*down, "reason=ptychojobs-test"], check=True)

        try:
            job = kill_first_checkpointed(run, "slurm/attempt-1/slurm_job_id", fail_node)
            deadline = time.monotonic() + 60
            while len(client.job(job["id"])["attempt_history"]) < 2:
                assert time.monotonic() < deadline, client.job(job["id"])
                time.sleep(0.3)
        finally:
            resume = ["scontrol", "update", f"nodename={node.strip()}", "state=resume"]
            subprocess.run(resume, capture_output=True)
        finished = client.wait_for_run(run["id"], timeout_s=STUDY_TIMEOUT_S, poll_s=0.5)
        done = client.job(job["id"])
    assert finished["status"] == "succeeded", done
    first, second = done["attempt_history"]
    assert first["outcome"] == "interrupted"
    assert "NODE_FAIL" in first["error"]
    assert second["outcome"] == "succeeded"
    assert done["failures"] == 0
    assert "resuming from checkpoints/last.ckpt" in Path(done["log_path"]).read_text()


def test_a_broken_data_file_fails_the_slurm_job_at_once(slurm: SlurmClient, tmp_path: Path) -> None:
    settings = {"executor": "slurm", "slurm_poll_interval_s": "0.3", "heartbeat_s": "0.5"}
    with study_services(tmp_path, workers=1, **settings) as services:
        cluster = {"gpus": 0, "cpus": 1}
        run = submit_demo_study(services, cluster=cluster, view="baseline", break_baseline=True)
        assert_failed_at_once(services, run, "slurm")


@pytest.mark.slow
def test_a_ptychi_reconstruction_runs_as_a_slurm_job(slurm: SlurmClient, tmp_path: Path) -> None:
    settings = {"executor": "slurm", "slurm_poll_interval_s": "0.3", "heartbeat_s": "1"}
    with study_services(tmp_path, workers=1, **settings) as services:
        client = services.client
        reconstruction = {"engines": ["lsqml"], "epochs": 12, "splits": ["test"]}
        run = submit_demo_study(
            services,
            {"gpus": 0, "cpus": 1},
            reconstruction=reconstruction,
            kind="reconstruct",
            view="baseline",
        )
        assert [(j["kind"], j["engine"], j["split"]) for j in run["jobs"]] == [
            ("reconstruct", "lsqml", "test")
        ]
        finished = client.wait_for_run(run["id"], timeout_s=STUDY_TIMEOUT_S, poll_s=0.5)
        [job] = client.jobs(run["id"])
    assert finished["status"] == "succeeded", job
    assert job["executor"] == "slurm"
    result = job["result"]
    assert result["algorithm"] == "LSQML"
    assert result["epochs_completed"] == 12
    flat = result["baselines"]["flat"]["ours"]["phase_mae"]
    assert result["metrics"]["phase_mae"] < flat  # pty-chi beats the flat object
    assert result["metrics"]["phase_correlation"] > 0.5
    attempt = Path(job["artifact_dir"]) / "slurm" / "attempt-1"
    assert "-m worker.reconstruction" in (attempt / "job.sh").read_text()
    assert json.loads((attempt / "config.json").read_text())["engine"] == "lsqml"
