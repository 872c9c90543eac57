"""Cancel and retry through the API, with the queue's worker calls playing the worker."""

from __future__ import annotations

import json
import time
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from app import queue
from app.core.config import Settings
from app.main import create_app
from tests.api.conftest import StudyTree


def _submit_two_jobs(client: TestClient, study: StudyTree) -> dict:
    response = client.post("/runs", json=study.body(filters={"dose": 1000}))
    assert response.status_code == 201, response.text
    return dict(response.json())


def test_cancel_queued_and_running_jobs_then_retry(
    client: TestClient, study: StudyTree, api_engine: Engine
) -> None:
    run = _submit_two_jobs(client, study)
    claimed = queue.claim_next_job(engine=api_engine, worker="w1", lease_s=60)
    assert claimed is not None
    running_id, queued_id = claimed.job_id, run["jobs"][1]["id"]
    assert client.get(f"/jobs/{running_id}").json()["status"] == "running"

    queued = client.post(f"/jobs/{queued_id}/cancel")
    assert queued.status_code == 200, queued.text
    assert queued.json()["status"] == "cancelled"

    asked = client.post(f"/jobs/{running_id}/cancel").json()
    assert (asked["status"], asked["cancel_requested"]) == ("running", True)
    beat = queue.heartbeat(
        engine=api_engine, job_id=running_id, lease_token=claimed.lease_token, lease_s=60
    )
    assert beat.cancel_requested
    assert not beat.lost
    assert queue.confirm_cancelled(
        engine=api_engine, job_id=running_id, lease_token=claimed.lease_token
    )
    job = client.get(f"/jobs/{running_id}").json()
    assert job["status"] == "cancelled"
    assert [(a["number"], a["worker"], a["outcome"]) for a in job["attempt_history"]] == [
        (1, "w1", "cancelled")
    ]
    assert client.get(f"/runs/{run['id']}").json()["status"] == "cancelled"

    retried = client.post(f"/runs/{run['id']}/retry")
    assert retried.status_code == 200, retried.text
    assert retried.json()["counts"] == {"queued": 2}
    jobs = client.get(f"/runs/{run['id']}/jobs").json()["data"]
    assert [(j["status"], j["cancel_requested"]) for j in jobs] == [("queued", False)] * 2
    assert len(jobs[0]["attempt_history"]) == 1  # the history survives a retry


def test_cancel_run_rewrites_the_manifest(client: TestClient, study: StudyTree) -> None:
    run = _submit_two_jobs(client, study)
    response = client.post(f"/runs/{run['id']}/cancel")
    assert response.status_code == 200, response.text
    assert (response.json()["status"], response.json()["counts"]) == (
        "cancelled",
        {"cancelled": 2},
    )
    on_disk = json.loads(Path(run["manifest_path"]).read_text())
    assert [job["status"] for job in on_disk["jobs"]] == ["cancelled", "cancelled"]
    assert on_disk["status"] == "cancelled"


def test_cancelling_a_finished_job_is_a_conflict(client: TestClient, study: StudyTree) -> None:
    response = client.post("/runs", json=study.body(filters={"dose": 1000}, dry_run=True))
    job_id = response.json()["jobs"][0]["id"]
    refused = client.post(f"/jobs/{job_id}/cancel")
    assert refused.status_code == 409, refused.text
    assert "dry_run" in refused.json()["detail"]


def test_startup_requeues_jobs_whose_lease_expired(
    client: TestClient, study: StudyTree, api_engine: Engine, api_settings: Settings
) -> None:
    run = _submit_two_jobs(client, study)
    claimed = queue.claim_next_job(engine=api_engine, worker="lost", lease_s=0.001)
    assert claimed is not None
    time.sleep(0.01)
    with TestClient(create_app(api_settings)) as restarted:
        job = restarted.get(f"/jobs/{claimed.job_id}").json()
    assert (job["status"], job["failures"]) == ("queued", 1)
    assert job["attempt_history"][0]["outcome"] == "expired"
    on_disk = json.loads(Path(run["manifest_path"]).read_text())
    assert on_disk["jobs"][0]["attempts"][0]["outcome"] == "expired"
