"""End to end with real processes: `ptychojobs serve` + `ptychojobs worker` on a SQLite file."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest
from sqlmodel import Session, select

from app.cli.client import ApiError, PtychoClient
from app.cli.processes import free_port, service_env, stop_process
from app.core.db import make_engine
from app.models import SkipEvent
from app.study.demo_data import make_demo_data

pytestmark = pytest.mark.slow

PTYCHOJOBS = str(Path(sys.executable).with_name("ptychojobs"))


@pytest.fixture
def services(tmp_path: Path) -> Iterator[tuple[PtychoClient, Path, str]]:
    """API and one CPU worker as child processes; their output goes to files in tmp_path."""
    data_root = tmp_path / "data"
    database_url = f"sqlite:///{tmp_path / 'e2e.db'}"
    port = free_port()
    env = service_env(
        data_root=data_root,
        database_url=database_url,
        poll_interval_s="0.2",
        shutdown_grace_s="5",
        log_level="INFO",
    )
    logs: list[IO[bytes]] = []
    processes: list[subprocess.Popen[bytes]] = []

    def start(name: str, *argv: str) -> None:
        log = (tmp_path / f"{name}.log").open("wb")
        logs.append(log)
        processes.append(subprocess.Popen([PTYCHOJOBS, *argv], env=env, stdout=log, stderr=log))

    client = PtychoClient(f"http://127.0.0.1:{port}")
    try:
        start("api", "serve", "--host", "127.0.0.1", "--port", str(port))
        client.wait_until_healthy(timeout_s=60)
        start("worker", "worker")  # after the API has migrated the database
        yield client, data_root, database_url
    finally:
        client.close()
        for process in reversed(processes):
            stop_process(process, grace_s=30)
        for log in logs:
            log.close()
        for name in ("api", "worker"):
            print(f"--- {name}.log ---\n" + (tmp_path / f"{name}.log").read_text()[-4000:])


def test_a_real_run_trains_every_job_and_serves_its_manifest(
    services: tuple[PtychoClient, Path, str],
) -> None:
    client, data_root, database_url = services
    # A tiny study (66 train patterns): dense kept, sparse rejected by the spacing rule.
    phase_c, phase_d = make_demo_data(
        data_root / "study", doses=(1e4,), n_positions=120, object_size=200
    )
    body = {
        "phase_c_root": str(phase_c),
        "phase_d_root": str(phase_d),
        "design": {"doses": [1e4]},
        "training": {"epochs": 1, "n_groups": 16, "batch_size": 8},
        "execution": {"accelerator": "cpu", "logger": "none"},
    }
    run = client.submit_run(body)
    assert [job["view"] for job in run["jobs"]] == ["baseline", "dense"]
    finished = client.wait_for_run(run["id"], timeout_s=240, poll_s=0.5)
    jobs = client.jobs(run["id"])
    assert finished["status"] == "succeeded", jobs
    assert [job["status"] for job in jobs] == ["succeeded", "succeeded"]

    manifest = client.manifest(run["id"])
    for entry in manifest["jobs"]:
        result = entry["result"]
        bundle = Path(entry["artifact_dir"]) / result["bundle_path"]
        assert hashlib.sha256(bundle.read_bytes()).hexdigest() == result["bundle_sha256"]
        assert bundle.stat().st_size == result["bundle_size_bytes"]
        assert result["epochs_completed"] == 1
    on_disk = json.loads(Path(finished["manifest_path"]).read_text())
    assert [job["status"] for job in on_disk["jobs"]] == ["succeeded", "succeeded"]

    engine = make_engine(database_url)
    try:
        with Session(engine) as session:
            stored = session.exec(select(SkipEvent).where(SkipEvent.run_id == run["id"])).all()
            in_db = [(s.dose, s.view, s.reason) for s in stored]
    finally:
        engine.dispose()
    in_manifest = [(s["dose"], s["view"], s["reason"]) for s in manifest["skipped_views"]]
    assert in_db == in_manifest
    assert len(in_db) == 1
    dose, view, reason = in_db[0]
    assert (dose, view) == (1e4, "sparse")
    assert "not found" in reason
    assert manifest["skipped_count"] == 1

    log_text, next_offset = client.job_log(jobs[0]["id"])
    assert next_offset == len(log_text.encode()) > 0

    # The CLI reads the same API: `status` shows the run; `submit` posts a file or flags.
    api = ["--api-url", client.base_url]
    wide = {**os.environ, "COLUMNS": "400"}  # rich would wrap long paths at 80 columns
    shown = subprocess.run(
        [PTYCHOJOBS, "status", str(run["id"]), *api], capture_output=True, text=True, env=wide
    )
    assert shown.returncode == 0, shown.stderr
    assert f"run {run['id']}: succeeded" in shown.stdout
    assert "sparse" in shown.stdout
    body_file = data_root / "dry.json"
    body_file.write_text(json.dumps({**body, "dry_run": True}))
    submitted = subprocess.run(
        [PTYCHOJOBS, "submit", "--file", str(body_file), *api],
        capture_output=True,
        text=True,
        env=wide,
    )
    assert submitted.returncode == 0, submitted.stdout
    assert f"run {run['id'] + 1}: dry_run, 2 jobs" in submitted.stdout
    roots = ["--phase-c-root", str(phase_c), "--phase-d-root", str(phase_d)]
    refused = subprocess.run(
        [PTYCHOJOBS, "submit", *roots, "--dose", "1000", *api],
        capture_output=True,
        text=True,
        env=wide,
    )
    assert refused.returncode == 1  # the study has no Phase C data at dose 1000
    assert "phase_c_root: file not found" in refused.stdout
    assert "dose_1000/" in refused.stdout
    with pytest.raises(ApiError) as missing:
        client.run(run["id"] + 2)  # nothing stored for the refused run
    assert missing.value.status_code == 404


def test_a_ptychi_reconstruction_runs_through_the_service_and_a_cancel_keeps_its_part(
    services: tuple[PtychoClient, Path, str],
) -> None:
    pytest.importorskip("ptychi", reason="pty-chi (the ptychi package) is not installed")
    client, data_root, _ = services
    phase_c, phase_d = make_demo_data(data_root / "study", doses=(1e5,), n_positions=300)
    body = {
        "phase_c_root": str(phase_c),
        "phase_d_root": str(phase_d),
        "design": {"doses": [1e5], "views": ["baseline"]},
        "filters": {"kind": "reconstruct", "split": "test"},
        "reconstruction": {"epochs": 20, "batch_size": 16},
        "execution": {"accelerator": "cpu"},
    }
    run = client.submit_run(body)
    [job] = run["jobs"]
    assert (job["kind"], job["engine"], job["split"]) == ("reconstruct", "lsqml", "test")
    finished = client.wait_for_run(run["id"], timeout_s=240, poll_s=0.5)
    assert finished["status"] == "succeeded", client.jobs(run["id"])
    manifest = client.manifest(run["id"])
    [entry] = manifest["reconstruction_jobs"]
    assert manifest["jobs"] == []
    assert (entry["algorithm"], entry["num_epochs"], entry["status"]) == ("LSQML", 20, "succeeded")
    metrics = entry["result"]["metrics"]
    flat = entry["result"]["baselines"]["flat"]["ours"]
    assert metrics["phase_correlation"] >= 0.9
    assert metrics["phase_mae"] <= flat["phase_mae"] / 2
    assert (Path(entry["output_dir"]) / "reconstruction.npz").is_file()
    assert Path(manifest["artifact_root"], "reconstruction_manifest.json").is_file()

    # Cancelled while it runs: it stops between epochs and keeps what it reached.
    long = client.submit_run({**body, "reconstruction": {"epochs": 2000, "batch_size": 16}})
    [job] = long["jobs"]
    deadline = time.monotonic() + 120
    while client.job(job["id"])["progress"]["epoch"] in (None, 0):
        assert time.monotonic() < deadline, client.job(job["id"])
        time.sleep(0.3)
    client.cancel_job(job["id"])
    ended = client.wait_for_run(long["id"], timeout_s=120, poll_s=0.5)
    assert ended["status"] == "cancelled"
    result = json.loads((Path(job["artifact_dir"]) / "result.json").read_text())
    assert result["status"] == "stopped"
    assert 0 < result["epochs_completed"] < 2000
