"""The end-to-end demo study on a cluster executor (SLURM, Ray): API and workers as processes.

The study is test_e2e's: one dose, baseline and dense trained, sparse skipped. While it
runs, a test kills one job's cluster process once its first epoch is checkpointed; the job
must come back as a new attempt that resumes from `last.ckpt`, and the run must succeed.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from app.cli.client import PtychoClient
from app.cli.processes import free_port, service_env, start_api, start_worker, stop_process
from app.study.demo_data import make_demo_data

EPOCHS = 3
STUDY_TIMEOUT_S = 420


@dataclass(frozen=True)
class Services:
    client: PtychoClient
    data_root: Path


@contextmanager
def study_services(tmp_path: Path, *, workers: int, **settings: str) -> Iterator[Services]:
    """`ptychojobs serve` and `python -m worker --workers N` with these settings."""
    data_root = tmp_path / "data"
    port = free_port()
    env = service_env(
        data_root=data_root,
        database_url=f"sqlite:///{tmp_path / 'study.db'}",
        poll_interval_s="0.2",
        shutdown_grace_s="5",
        log_level="INFO",
        **settings,
    )
    logs: list[IO[bytes]] = []
    client = PtychoClient(f"http://127.0.0.1:{port}")
    api = worker = None
    try:
        logs.append((tmp_path / "api.log").open("wb"))
        api = start_api(host="127.0.0.1", port=port, env=env, output=logs[-1])
        client.wait_until_healthy(timeout_s=60)
        logs.append((tmp_path / "worker.log").open("wb"))
        worker = start_worker(env=env, workers=workers, output=logs[-1])
        yield Services(client, data_root)
    finally:
        client.close()
        for process in (worker, api):
            if process is not None:
                stop_process(process, grace_s=30)
        for log in logs:
            log.close()
        for name in ("api", "worker"):
            if (log_path := tmp_path / f"{name}.log").exists():
                print(f"--- {name}.log ---\n" + log_path.read_text()[-6000:])


def submit_demo_study(
    services: Services,
    cluster: dict[str, Any],
    *,
    epochs: int = EPOCHS,
    reconstruction: dict[str, Any] | None = None,
    break_baseline: bool = False,
    **filters: Any,
) -> dict[str, Any]:
    """The demo study of test_e2e, with the run's cluster resources; returns the new run.

    `break_baseline`: the baseline's train split gets a real-valued probe, which breaks the
    data contract (the submission checks only that the files exist).
    """
    phase_c, phase_d = make_demo_data(
        services.data_root / "study", doses=(1e4,), n_positions=120, object_size=200
    )
    if break_baseline:
        train = phase_c / "dose_10000" / "patched_train.npz"
        with np.load(train) as npz:
            arrays = {key: npz[key] for key in npz.files}
        arrays["probeGuess"] = np.abs(arrays["probeGuess"])
        np.savez(train, **arrays)
    body = {
        "phase_c_root": str(phase_c),
        "phase_d_root": str(phase_d),
        "design": {"doses": [1e4]},
        "training": {
            "epochs": epochs,
            "n_groups": 16,
            "batch_size": 4,
            "architecture": "unet",
            "early_stop_patience": 0,
        },  # every epoch runs: tests count them,
        "execution": {"accelerator": "cpu", "logger": "csv", "cluster": cluster},
        "filters": filters,
        **({"reconstruction": reconstruction} if reconstruction is not None else {}),
    }
    run: dict[str, Any] = services.client.submit_run(body)
    return run


def assert_failed_at_once(services: Services, run: dict[str, Any], executor: str) -> None:
    """The broken baseline failed after one attempt, naming file and key; nothing retried."""
    finished = services.client.wait_for_run(run["id"], timeout_s=STUDY_TIMEOUT_S, poll_s=0.5)
    assert finished["status"] == "failed", finished
    (job,) = services.client.jobs(run["id"])
    assert job["status"] == "failed", job
    assert job["executor"] == executor, job
    assert [a["outcome"] for a in job["attempt_history"]] == ["failed"], job
    assert job["failures"] == 1
    assert "patched_train.npz" in job["error"], job["error"]
    assert "'probeGuess'" in job["error"], job["error"]
    assert "not retried" in job["error"]


def kill_first_checkpointed(
    run: dict[str, Any], attempt_file: str, kill: Callable[[Path], None]
) -> dict[str, Any]:
    """Once a job's first attempt has checkpointed an epoch, `kill(<attempt-1 file>)`."""
    deadline = time.monotonic() + STUDY_TIMEOUT_S
    while time.monotonic() < deadline:
        for job in run["jobs"]:
            folder = Path(job["artifact_dir"])
            marker = folder / attempt_file
            if (folder / "checkpoints" / "last.ckpt").exists() and marker.exists():
                kill(marker)
                return dict(job)
        time.sleep(0.02)
    raise AssertionError(f"no job checkpointed an epoch within {STUDY_TIMEOUT_S} s")


def assert_study_succeeded(
    services: Services, run: dict[str, Any], killed: dict[str, Any], executor: str, why: str
) -> None:
    """Every job succeeded; the killed one in a second attempt that resumed; nothing lost."""
    client = services.client
    assert [job["view"] for job in run["jobs"]] == ["baseline", "dense"]
    finished = client.wait_for_run(run["id"], timeout_s=STUDY_TIMEOUT_S, poll_s=0.5)
    jobs = {job["id"]: job for job in client.jobs(run["id"])}
    assert finished["status"] == "succeeded", jobs
    for job in jobs.values():
        assert job["status"] == "succeeded", job
        assert job["executor"] == executor, job
        assert all(a["executor"] == executor for a in job["attempt_history"]), job
        result = job["result"]
        assert result["epochs_completed"] == EPOCHS
        assert [row["epoch"] for row in result["history"]] == list(range(1, EPOCHS + 1))
        folder = Path(job["artifact_dir"])
        bundle = folder / result["bundle_path"]
        assert hashlib.sha256(bundle.read_bytes()).hexdigest() == result["bundle_sha256"]
        assert (folder / result["reconstruction_png"]).is_file()

    again = jobs[killed["id"]]
    outcomes = [(a["number"], a["outcome"]) for a in again["attempt_history"]]
    assert outcomes == [(1, "failed"), (2, "succeeded")], again["attempt_history"]
    assert why in again["attempt_history"][0]["error"]
    log = Path(again["log_path"]).read_text()
    assert "resuming from checkpoints/last.ckpt" in log.split("attempt 2", 1)[1]
    for other in (job for job in jobs.values() if job["id"] != killed["id"]):
        assert [a["outcome"] for a in other["attempt_history"]] == ["succeeded"]

    skips = client.skips(run["id"])
    assert [(s["dose"], s["view"]) for s in skips] == [(1e4, "sparse")]
    manifest = json.loads(Path(finished["manifest_path"]).read_text())
    assert [entry["status"] for entry in manifest["jobs"]] == ["succeeded", "succeeded"]
