"""pty-chi reconstruction jobs in a run: enumerated per dose × view × split × engine beside
the training jobs, selected by `filters.kind` and `split`, skipped with their view, listed by
dry runs and in the manifest (its `reconstruction_jobs` and reconstruction_manifest.json)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from tests.api.conftest import StudyTree
from tests.api.run_states import claim, succeed


def _submit(client: TestClient, study: StudyTree, **extra: object) -> dict[str, Any]:
    response = client.post("/runs", json=study.body(dry_run=True, **extra))
    assert response.status_code == 201, response.text
    return dict(response.json())


def test_reconstructions_are_enumerated_beside_training_per_split_and_engine(
    client: TestClient, study: StudyTree
) -> None:
    run = _submit(
        client, study, filters={"dose": 1e4}, reconstruction={"engines": ["lsqml", "epie"]}
    )
    jobs = run["jobs"]
    # Per view: the training job, then engines × splits (both by default).
    kinds = [(j["view"], j["kind"], j["engine"], j["split"]) for j in jobs]
    assert kinds[:5] == [
        ("baseline", "train", None, None),
        ("baseline", "reconstruct", "lsqml", "train"),
        ("baseline", "reconstruct", "lsqml", "test"),
        ("baseline", "reconstruct", "epie", "train"),
        ("baseline", "reconstruct", "epie", "test"),
    ]
    assert len(jobs) == 3 * 5  # baseline, dense, sparse at dose 1e4
    reconstruction = next(j for j in jobs if j["kind"] == "reconstruct")
    assert reconstruction["artifact_dir"].endswith("dose_10000/baseline/ptychi/lsqml_train")
    assert Path(reconstruction["log_path"]).parent == Path(reconstruction["artifact_dir"])
    log = Path(reconstruction["log_path"]).read_text()
    assert "DRY RUN: reconstruct baseline dose=10000.0 engine=lsqml split=train" in log
    stored = client.get(f"/runs/{run['id']}").json()
    assert stored["reconstruction"]["epochs"] == 100  # the study's Phase F default


def test_filters_select_the_kind_and_the_split(client: TestClient, study: StudyTree) -> None:
    only = _submit(
        client,
        study,
        filters={"dose": 1e4, "kind": "reconstruct", "split": "test"},
        reconstruction={},
    )
    assert {(j["kind"], j["engine"], j["split"]) for j in only["jobs"]} == {
        ("reconstruct", "lsqml", "test")
    }
    assert len(only["jobs"]) == 3
    training = _submit(client, study, filters={"dose": 1e4, "kind": "train"}, reconstruction={})
    assert {j["kind"] for j in training["jobs"]} == {"train"}
    refused = client.post("/runs", json=study.body(dry_run=True, filters={"kind": "reconstruct"}))
    assert refused.status_code == 422
    assert "asks for none" in refused.text
    bad = client.post("/runs", json=study.body(reconstruction={"engines": ["sart"]}))
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"][:3] == ["body", "reconstruction", "engines"]


def test_a_missing_view_skips_its_reconstructions_with_the_same_reason(
    client: TestClient, study: StudyTree
) -> None:
    # The tree lacks the sparse view at dose 1000: one skip event stands for its training
    # job and its reconstructions alike, and none of them is enumerated.
    run = _submit(client, study, filters={"dose": 1e3}, reconstruction={})
    views = {(j["view"], j["kind"]) for j in run["jobs"]}
    assert ("sparse", "train") not in views
    assert ("sparse", "reconstruct") not in views
    assert ("dense", "reconstruct") in views
    assert [s["view"] for s in run["skipped_views"]] == ["sparse"]


def test_the_manifest_lists_reconstructions_apart_in_phase_f_fields(
    client: TestClient, study: StudyTree
) -> None:
    run = _submit(client, study, filters={"dose": 1e4, "view": "dense"}, reconstruction={})
    manifest = client.get(f"/manifests/{run['id']}").json()
    # The study's `jobs` keep their schema: training jobs only.
    assert [j["view"] for j in manifest["jobs"]] == ["dense"]
    entries = manifest["reconstruction_jobs"]
    assert [(e["split"], e["algorithm"], e["num_epochs"]) for e in entries] == [
        ("train", "LSQML", 100),
        ("test", "LSQML", 100),
    ]
    assert entries[0]["input_npz"].endswith("dense_train.npz")
    assert entries[1]["input_npz"].endswith("dense_test.npz")
    on_disk = json.loads(
        (Path(manifest["artifact_root"]) / "reconstruction_manifest.json").read_text()
    )
    assert on_disk["counts"]["total"] == 2
    assert on_disk["jobs"][0]["output_dir"] == entries[0]["output_dir"]
    assert set(on_disk["jobs"][0]) >= {
        "dose", "view", "split", "input_npz", "output_dir", "algorithm", "num_epochs",
    }  # fmt: skip


def test_the_report_sets_the_network_beside_ptychi_with_phase_g_deltas(
    client: TestClient, api_engine: Engine, study: StudyTree
) -> None:
    body = study.body(
        filters={"dose": 1e4, "view": "baseline"}, reconstruction={"splits": ["test"]}
    )
    run_id = int(client.post("/runs", json=body).json()["id"])
    trained = claim(api_engine)
    assert trained.kind == "train"
    succeed(api_engine, trained, epochs=2, phase_mae=0.15)
    reconstructed = claim(api_engine)
    assert (reconstructed.kind, reconstructed.engine, reconstructed.split) == (
        "reconstruct",
        "lsqml",
        "test",
    )
    assert reconstructed.reconstruction["epochs"] == 100
    succeed(api_engine, reconstructed, epochs=100, phase_mae=0.04)

    report = client.get(f"/runs/{run_id}/report").json()
    [row] = report["rows"]  # one row per training job: the reconstruction sits beside it
    assert row["ptychi"]["lsqml"]["job_id"] == reconstructed.job_id
    assert row["ptychi"]["lsqml"]["metrics"]["phase_mae"] == 0.04
    assert row["vs_PtyChi"]["phase_mae"] == pytest.approx(0.15 - 0.04)
    table = list(csv.DictReader(io.StringIO(client.get(f"/runs/{run_id}/report?format=csv").text)))
    assert float(table[0]["phase_mae_ptychi"]) == 0.04
    assert float(table[0]["phase_mae_vs_ptychi"]) == pytest.approx(0.11)
    figure = client.get(f"/runs/{run_id}/report/figure.png")
    assert figure.status_code == 200
    assert figure.content[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_cli_report_shows_ptychi_columns_only_when_the_run_has_them() -> None:
    from rich.console import Console

    from app.cli.runs import report_table

    row = {
        "dose": 1e4, "view": "baseline", "gridsize": 1, "status": "succeeded",
        "epochs_completed": 2, "duration_s": 3.0, "metrics": {"phase_mae": 0.15},
        "baselines": {"flat": {"phase_mae": 0.17}}, "skill": {}, "verdict": "beats flat only",
        "ptychi": {"lsqml": {"job_id": 2, "status": "succeeded", "metrics": {"phase_mae": 0.04}}},
        "vs_PtyChi": {"phase_mae": 0.11},
    }  # fmt: skip
    document = {"run_id": 1, "status": "succeeded", "rows": [row]}
    console = Console(width=400, record=True)
    console.print(report_table(document))
    text = console.export_text()
    assert "pty-chi / Δ" in text
    assert "0.04 / 0.11" in text
    console.print(report_table({**document, "rows": [{**row, "ptychi": {}, "vs_PtyChi": {}}]}))
    assert console.export_text().count("pty-chi") == 0


def test_a_body_whose_bytes_do_not_decode_is_a_422_on_the_body(client: TestClient) -> None:
    response = client.post(
        "/runs", content=b"\xcf\xa9\xff\xfe3", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body"]
