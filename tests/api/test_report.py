"""The study report: JSON, CSV and the figure; trivial baselines beside the metrics."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from app.baselines import score_flat, ssim
from tests.api.conftest import StudyTree
from tests.api.run_states import BASELINES, METRICS, claim, fail, succeed


@pytest.fixture
def finished(client: TestClient, api_engine: Engine, study: StudyTree) -> int:
    """Dose 1000: baseline succeeded, dense failed, sparse skipped."""
    body = study.body(filters={"dose": 1000.0}, training={"epochs": 2})
    run_id = int(client.post("/runs", json=body).json()["id"])
    succeed(api_engine, claim(api_engine), epochs=2, phase_ssim=0.42)
    for _ in range(3):  # every attempt fails: the job ends failed
        fail(api_engine, claim(api_engine))
    return run_id


def test_the_report_has_a_row_per_dose_and_view_with_baselines(
    client: TestClient, finished: int
) -> None:
    report = client.get(f"/runs/{finished}/report").json()

    assert report["status"] == "failed"
    assert report["views"] == ["baseline", "dense", "sparse"]
    baseline, dense, sparse = report["rows"]
    assert (baseline["view"], baseline["status"], baseline["epochs_completed"]) == (
        "baseline",
        "succeeded",
        2,
    )
    assert baseline["metrics"] == {**METRICS, "phase_ssim": 0.42}
    assert baseline["baseline_source"] == "result"
    assert baseline["baselines"]["flat"] == BASELINES["flat"]["ours"]
    # No result: the flat baseline is computed from the job's test split.
    assert dense["status"] == "failed"
    assert dense["metrics"] == {}
    assert dense["baseline_source"] == "test_split"
    assert set(dense["baselines"]["flat"]) == set(report["metric_keys"])
    assert dense["baselines"]["flat"]["phase_correlation"] == 0.0
    assert sparse["status"] == "skipped"
    assert "not found" in sparse["skip_reason"]


def test_the_csv_puts_each_metrics_baselines_beside_it(client: TestClient, finished: int) -> None:
    response = client.get(f"/runs/{finished}/report", params={"format": "csv"})

    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    header = response.text.splitlines()[0].split(",")
    at = header.index("phase_ssim")
    assert header[at : at + 3] == ["phase_ssim", "phase_ssim_flat", "phase_ssim_input_only"]
    assert [row["view"] for row in rows] == ["baseline", "dense", "sparse"]
    assert float(rows[0]["phase_ssim"]) == 0.42
    assert float(rows[0]["phase_ssim_flat"]) == 0.1
    assert rows[2]["status"] == "skipped"
    assert rows[2]["phase_ssim"] == ""


def test_the_figure_is_a_png(client: TestClient, finished: int) -> None:
    response = client.get(f"/runs/{finished}/report/figure.png")

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    assert response.content.startswith(b"\x89PNG")
    assert len(response.content) > 10_000


def test_unknown_runs_have_no_report(client: TestClient) -> None:
    assert client.get("/runs/5/report").status_code == 404
    assert client.get("/runs/5/report/figure.png").status_code == 404


def test_flat_baseline_scores_like_the_worker() -> None:
    # The worker's own metric code: the baseline must use the same definitions.
    from worker.training.metrics import compare

    rng = np.random.default_rng(1)
    gt = (1 + 0.2 * rng.random((40, 48))) * np.exp(1j * 0.5 * rng.random((40, 48)))
    mask = np.zeros(gt.shape, dtype=bool)
    mask[3:-3, 2:-2] = True
    flat = np.full(gt.shape, np.abs(gt)[mask].mean() + 0j)

    ours, theirs = score_flat(gt, mask), compare(flat, gt, mask)

    for key, value in ours.items():
        assert value == pytest.approx(theirs[key], rel=1e-6, abs=1e-9), key
    assert ssim(np.abs(gt), np.abs(gt)) == pytest.approx(1.0)
