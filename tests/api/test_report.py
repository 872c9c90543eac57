"""The study report: JSON, CSV and the figure; trivial baselines beside the metrics."""

from __future__ import annotations

import csv
import io
import os
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from app.figures import _panel
from app.report import StudyReport
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
    # No result: no flat object either (the API reads no study data file), and no verdict.
    assert dense["status"] == "failed"
    assert dense["metrics"] == {}
    assert dense["baseline_source"] is None
    assert dense["baselines"] == {}
    assert dense["verdict"] is None
    assert sparse["status"] == "skipped"
    assert "not found" in sparse["skip_reason"]


def test_each_row_carries_its_verdict_against_the_flat_object(
    client: TestClient, finished: int
) -> None:
    report = client.get(f"/runs/{finished}/report").json()

    baseline, dense, sparse = report["rows"]
    # The model's phase MAE (0.2) is the flat object's: it learned nothing.
    assert (baseline["beats_flat"], baseline["learned"], baseline["collapsed"]) == (
        False,
        False,
        False,
    )
    assert baseline["verdict"] == "no better than flat"
    assert baseline["skill"]["model"]["phase_mae"] == 0.0
    assert baseline["skill"]["model"]["phase_ssim"] == pytest.approx((0.42 - 0.1) / 0.9)
    assert baseline["skill"]["input_only"]["phase_ssim"] == pytest.approx((0.2 - 0.1) / 0.9)
    for unjudged in (dense, sparse):
        assert (unjudged["beats_flat"], unjudged["learned"], unjudged["verdict"]) == (
            None,
            None,
            None,
        )
    assert report["verdict_counts"] == {
        "learned": 0,
        "beats flat only": 0,
        "no better than flat": 1,
        "collapsed": 0,
    }
    assert report["baseline_labels"]["flat"] == "flat object (no learning)"
    assert "20%" in report["verdict_rule"]


def test_the_verdict_uses_the_workers_flat_object_and_the_result_losses(
    client: TestClient, api_engine: Engine, study: StudyTree
) -> None:
    body = study.body(filters={"dose": 1000.0}, training={"epochs": 2})
    run_id = int(client.post("/runs", json=body).json()["id"])
    # The worker's flat object (phase MAE 0.3) is the one the verdict uses.
    worker_flat = {"ours": {**BASELINES["flat"]["ours"], "phase_mae": 0.3}}
    extra = {
        "baselines": {**BASELINES, "flat": worker_flat},
        "val_loss": -130.0,
        "reference_val_loss": -131.5,
        "flat_val_loss": -120.0,
        "collapsed": True,
        "collapse": {"collapsed": True, "reason": "constant output", "evidence": {}, "seeds": []},
        "stopped": {"epoch": 2, "reason": "max_epochs"},
    }
    succeed(api_engine, claim(api_engine), epochs=2, result=extra, phase_mae=0.1)
    # An older worker's result: no baselines, so no verdict against a flat object.
    succeed(api_engine, claim(api_engine), epochs=2, result={"baselines": {}}, phase_mae=0.1)

    report = client.get(f"/runs/{run_id}/report").json()

    worker, older = report["rows"][:2]
    assert worker["baseline_source"] == "result"
    assert worker["baselines"]["flat"]["phase_mae"] == 0.3
    assert (worker["beats_flat"], worker["learned"], worker["collapsed"]) == (True, True, True)
    assert worker["verdict"] == "collapsed, learned"
    assert worker["collapse_reason"] == "constant output"
    assert (worker["val_loss"], worker["reference_val_loss"], worker["flat_val_loss"]) == (
        -130.0,
        -131.5,
        -120.0,
    )
    # No flat object in the result: none is made up here (the API reads no data file).
    assert older["baseline_source"] is None
    assert "flat" not in older["baselines"]
    assert (older["beats_flat"], older["verdict"], older["collapsed"]) == (None, None, False)
    assert older["flat_val_loss"] is None  # absent from old results, not an error

    rows = list(csv.DictReader(io.StringIO(client.get(f"/runs/{run_id}/report?format=csv").text)))
    assert (rows[0]["beats_flat"], rows[0]["learned"], rows[0]["collapsed"]) == (
        "true",
        "true",
        "true",
    )
    assert rows[0]["verdict"] == "collapsed, learned"
    assert float(rows[0]["flat_val_loss"]) == -120.0
    assert float(rows[0]["phase_mae_skill"]) == pytest.approx(1 - 0.1 / 0.3)
    assert rows[1]["verdict"] == ""  # no flat object, no verdict
    assert rows[1]["phase_mae_input_only"] == ""


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
    tail = header[header.index("phase_correlation_input_only") + 1 :]
    assert tail[:2] == ["amplitude_mae_skill", "amplitude_mae_input_only_skill"]
    # The pty-chi columns come last (empty for a run without reconstructions).
    ptychi = tail.index("amplitude_mae_ptychi")
    assert tail[ptychi:][:2] == ["amplitude_mae_ptychi", "amplitude_mae_vs_ptychi"]
    assert rows[0]["amplitude_mae_ptychi"] == ""
    assert tail[ptychi - 9 : ptychi] == [
        "val_loss",
        "reference_val_loss",
        "flat_val_loss",
        "beats_flat",
        "learned",
        "collapsed",
        "verdict",
        "baseline_source",
        "skip_reason",
    ]
    assert float(rows[0]["phase_mae_input_only"]) == 0.2
    assert float(rows[0]["phase_ssim_input_only_skill"]) == pytest.approx((0.2 - 0.1) / 0.9)
    assert (rows[0]["beats_flat"], rows[0]["learned"], rows[0]["collapsed"]) == (
        "false",
        "false",
        "false",
    )
    assert rows[0]["verdict"] == "no better than flat"
    assert (rows[1]["beats_flat"], rows[1]["verdict"]) == ("", "")


def test_the_figure_is_a_png(client: TestClient, finished: int) -> None:
    response = client.get(f"/runs/{finished}/report/figure.png")

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    assert response.content.startswith(b"\x89PNG")
    assert len(response.content) > 10_000


def test_the_figure_draws_both_baselines_under_their_own_names(
    client: TestClient, finished: int
) -> None:
    from matplotlib.figure import Figure

    report = StudyReport.model_validate(client.get(f"/runs/{finished}/report").json())
    axes = Figure().add_subplot()

    _panel(axes, report, "phase_mae")

    _, labels = axes.get_legend_handles_labels()
    assert labels[:3] == [
        "baseline view: model",
        "baseline view: flat object (no learning)",
        "baseline view: input only (no network)",
    ]
    flat, alone = (line.get_ydata() for line in axes.get_lines()[1:3])
    assert list(flat) == [0.2]
    assert list(alone) == [0.2]


def test_unknown_runs_have_no_report(client: TestClient) -> None:
    assert client.get("/runs/5/report").status_code == 404
    assert client.get("/runs/5/report/figure.png").status_code == 404


def test_a_test_split_swapped_for_a_fifo_never_blocks_a_report(
    client: TestClient, finished: int
) -> None:
    # The failed dense job has no result: the report must not open its split at all.
    [dense] = [
        j for j in client.get(f"/runs/{finished}/jobs").json()["data"] if j["view"] == "dense"
    ]
    split = Path(dense["test_data_path"])
    split.unlink()
    os.mkfifo(split)  # an open() of it would block until a writer came
    pool = ThreadPoolExecutor(max_workers=1)
    answers = [pool.submit(client.get, f"/runs/{finished}/report{tail}")
               for tail in ("", "?format=csv", "/figure.png")]  # fmt: skip
    try:
        statuses = [answer.result(timeout=30).status_code for answer in answers]
    except TimeoutError:  # a reader is stuck in open(): release it, then fail
        pool.shutdown(wait=False, cancel_futures=True)
        os.close(os.open(split, os.O_WRONLY | os.O_NONBLOCK))
        raise AssertionError("a report blocked on the FIFO test split") from None
    pool.shutdown()
    assert statuses == [200, 200, 200]
    assert stat.S_ISFIFO(split.stat().st_mode)  # untouched: nobody opened it
