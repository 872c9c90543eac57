"""Reading runs, jobs, skips, logs and health; 404 for unknown ids; the Swagger example."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url

from app.core.config import Settings
from app.main import create_app
from tests.api.conftest import StudyTree, make_study_tree


def _submit(client: TestClient, study: StudyTree, **extra: object) -> dict:
    response = client.post("/runs", json=study.body(**extra))
    assert response.status_code == 201, response.text
    return dict(response.json())


def test_runs_are_paginated_newest_first_and_filtered_by_status(
    client: TestClient, study: StudyTree
) -> None:
    ids = [_submit(client, study, dry_run=index % 2 == 0)["id"] for index in range(5)]
    page = client.get("/runs", params={"offset": 1, "limit": 2}).json()
    assert page["count"] == 5
    assert [run["id"] for run in page["data"]] == [ids[3], ids[2]]
    queued = client.get("/runs", params={"status": "queued"}).json()
    assert [run["id"] for run in queued["data"]] == [ids[3], ids[1]]
    assert queued["count"] == 2
    assert all(run["counts"] == {"queued": 8} for run in queued["data"])
    dry = client.get("/runs", params={"status": "dry_run", "limit": 1}).json()
    assert dry["count"] == 3
    assert [run["id"] for run in dry["data"]] == [ids[4]]
    bad = client.get("/runs", params={"status": "sleeping"})
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["query", "status"]


def test_run_jobs_skips_and_job_read_back(client: TestClient, study: StudyTree) -> None:
    created = _submit(client, study, filters={"view": "sparse"})
    run_id = created["id"]
    run = client.get(f"/runs/{run_id}").json()
    assert (run["status"], run["job_count"], run["skipped_count"]) == ("queued", 2, 1)
    assert run["filters"] == {
        "dose": None,
        "view": "sparse",
        "gridsize": None,
        "kind": None,
        "split": None,
    }
    jobs = client.get(f"/runs/{run_id}/jobs").json()
    assert jobs["count"] == 2
    assert [j["dose"] for j in jobs["data"]] == [1e4, 1e5]
    skips = client.get(f"/runs/{run_id}/skips").json()
    assert skips["count"] == 1
    assert skips["data"][0]["code"] == "data_missing"
    assert skips["data"][0]["train_exists"] is False
    job = client.get(f"/jobs/{jobs['data'][0]['id']}").json()
    assert job["status"] == "queued"
    assert job["attempts"] == 0
    assert job["progress"] == {"epoch": None, "epochs": None, "step": None, "loss": None}
    assert job["attempt_history"] == []
    assert job["result"] is None
    assert job["artifact_dir"].endswith("dose_10000/sparse/gs2")


@pytest.mark.parametrize(
    "path",
    [
        "/runs/999",
        "/runs/999/jobs",
        "/runs/999/skips",
        "/jobs/999",
        "/jobs/999/log",
        "/manifests/999",
    ],
)
def test_unknown_ids_are_404(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404, response.text
    assert "999 not found" in response.json()["detail"]


@pytest.mark.parametrize("path", ["/runs/999/cancel", "/runs/999/retry", "/jobs/999/cancel"])
def test_control_of_unknown_ids_is_404(client: TestClient, path: str) -> None:
    assert client.post(path).status_code == 404


def test_log_is_followed_by_offset(client: TestClient, study: StudyTree) -> None:
    job = _submit(client, study, filters={"dose": 1e4, "view": "baseline"})["jobs"][0]
    empty = client.get(f"/jobs/{job['id']}/log")
    assert (empty.status_code, empty.text, empty.headers["x-log-next-offset"]) == (200, "", "0")
    log = Path(job["log_path"])
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("epoch 1 loss 0.5\n")
    first = client.get(f"/jobs/{job['id']}/log")
    assert first.text == "epoch 1 loss 0.5\n"
    offset = int(first.headers["x-log-next-offset"])
    with log.open("a") as handle:
        handle.write("epoch 2 loss 0.25 ✓\n")
    second = client.get(f"/jobs/{job['id']}/log", params={"offset": offset})
    assert second.text == "epoch 2 loss 0.25 ✓\n"
    assert int(second.headers["x-log-next-offset"]) == log.stat().st_size
    assert int(second.headers["x-log-size"]) == log.stat().st_size
    assert client.get(f"/jobs/{job['id']}/log", params={"offset": -1}).status_code == 422


def test_health_answers_with_the_database(client: TestClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert response.json()["database"] == "ok"


def test_swagger_example_body_is_accepted(client: TestClient, data_root: Path) -> None:
    schema = client.get("/openapi.json").json()["components"]["schemas"]["RunCreate"]
    (example,) = schema["examples"]
    make_study_tree(data_root, prefix="demo")  # what `demo-data --out <data_root>/demo` makes
    response = client.post("/runs", json=example)
    assert response.status_code == 201, response.text
    assert response.json()["job_count"] == 2
    assert response.json()["status"] == "dry_run"


def test_reads_answer_while_a_writer_holds_the_lock(
    api_settings: Settings, study: StudyTree
) -> None:
    settings = api_settings.model_copy(update={"sqlite_busy_timeout_ms": 200})
    with TestClient(create_app(settings)) as client:
        run = _submit(client, study, filters={"dose": 1e4})
        job_id = run["jobs"][0]["id"]
        database = make_url(settings.resolved_database_url).database
        assert database is not None
        writer = sqlite3.connect(database, timeout=0, isolation_level=None)
        writer.execute("BEGIN IMMEDIATE")  # a worker mid-claim, or a slow submission
        try:
            for path in (
                "/runs",
                f"/runs/{run['id']}",
                f"/runs/{run['id']}/jobs",
                f"/runs/{run['id']}/skips",
                f"/jobs/{job_id}",
                f"/jobs/{job_id}/log",
                f"/manifests/{run['id']}",
                "/health",
            ):
                response = client.get(path)
                assert response.status_code == 200, (path, response.text)
        finally:
            writer.execute("ROLLBACK")
            writer.close()
