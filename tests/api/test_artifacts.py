"""Job artifacts over HTTP, and per-epoch loss history from train.log."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from tests.api.conftest import StudyTree
from tests.api.run_states import claim, report_epoch, succeed


def _finished_job(client: TestClient, engine: Engine, study: StudyTree) -> int:
    client.post("/runs", json=study.body(filters={"dose": 1000.0}, training={"epochs": 2}))
    job = claim(engine)
    report_epoch(engine, job, epoch=1, epochs=2, loss=0.5)
    report_epoch(engine, job, epoch=2, epochs=2, loss=0.25)
    succeed(engine, job, epochs=2)
    return job.job_id


def test_the_reconstruction_png_result_and_metrics_are_served(
    client: TestClient, api_engine: Engine, study: StudyTree
) -> None:
    job_id = _finished_job(client, api_engine, study)
    artifact_dir = Path(client.get(f"/jobs/{job_id}").json()["artifact_dir"])

    png = client.get(f"/jobs/{job_id}/artifacts/reconstruction.png")
    assert png.status_code == 200, png.text
    assert png.headers["content-type"] == "image/png"
    assert png.content == (artifact_dir / "reconstruction.png").read_bytes()
    assert png.content.startswith(b"\x89PNG")
    result = client.get(f"/jobs/{job_id}/artifacts/result.json")
    assert result.json() == json.loads((artifact_dir / "result.json").read_text())
    metrics = client.get(f"/jobs/{job_id}/artifacts/metrics.csv")
    assert metrics.headers["content-type"].startswith("text/csv")
    assert metrics.text.startswith("epoch,train_loss")

    listed = client.get(f"/jobs/{job_id}/artifacts").json()
    names = [item["name"] for item in listed["data"]]
    assert names == ["reconstruction.png", "result.json", "metrics.csv", "train.log"]
    assert listed["data"][0]["url"] == f"/jobs/{job_id}/artifacts/reconstruction.png"


def test_unknown_and_unwritten_artifacts_are_404(
    client: TestClient, api_engine: Engine, study: StudyTree
) -> None:
    client.post("/runs", json=study.body(filters={"dose": 1000.0}))
    queued = client.get("/runs/1/jobs").json()["data"][0]["id"]

    missing = client.get(f"/jobs/{queued}/artifacts/reconstruction.png")
    assert missing.status_code == 404
    assert "has no reconstruction.png" in missing.json()["detail"]
    unknown = client.get(f"/jobs/{queued}/artifacts/model_bundle.pt")
    assert unknown.status_code == 404
    assert "no artifact named" in unknown.json()["detail"]
    assert client.get(f"/jobs/{queued}/artifacts/..%2Fresult.json").status_code == 404
    assert client.get("/jobs/999/artifacts/result.json").status_code == 404
    assert client.get(f"/jobs/{queued}/artifacts").json() == {"data": [], "count": 0}


def test_history_reads_the_latest_attempts_epoch_lines(
    client: TestClient, api_engine: Engine, study: StudyTree
) -> None:
    job_id = _finished_job(client, api_engine, study)
    log = Path(client.get(f"/jobs/{job_id}").json()["log_path"])
    with log.open("a") as handle:  # a second attempt starts over at epoch 1
        handle.write("2026-01-01T00:00:00Z epoch 1/2 train_loss=0.4 val_loss=0.45\n")
        handle.write("2026-01-01T00:00:00Z epoch 2/2 train_loss=0.3 (stopped early)\n")

    history = client.get(f"/jobs/{job_id}/history").json()

    assert history["epochs_total"] == 2
    assert history["data"] == [
        {"epoch": 1, "complete": True, "losses": {"train_loss": 0.4, "val_loss": 0.45}},
        {"epoch": 2, "complete": False, "losses": {"train_loss": 0.3}},
    ]
