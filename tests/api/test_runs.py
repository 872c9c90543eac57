"""POST /runs: the study's acceptance, both Phase D layouts, strict mode and dry runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from tests.api.conftest import StudyTree, make_study_tree

SPARSE_1000 = ("dose_1000/sparse/sparse_train.npz", "dose_1000/sparse/sparse_test.npz")


def _runs_stored(client: TestClient) -> int:
    response = client.get("/runs")
    assert response.status_code == 200, response.text
    return int(response.json()["count"])


def test_dry_run_at_dose_1000_has_two_jobs_and_one_skip(
    client: TestClient, study: StudyTree
) -> None:
    body = study.body(filters={"dose": 1000}, dry_run=True)
    response = client.post("/runs", json=body)
    assert response.status_code == 201, response.text
    run = response.json()
    assert [(j["view"], j["dose"], j["status"]) for j in run["jobs"]] == [
        ("baseline", 1000.0, "dry_run"),
        ("dense", 1000.0, "dry_run"),
    ]
    assert run["status"] == "dry_run"
    manifest = client.get(f"/manifests/{run['id']}").json()
    assert [(j["view"], j["dose"], j["gridsize"]) for j in manifest["jobs"]] == [
        ("baseline", 1000.0, 1),
        ("dense", 1000.0, 2),
    ]
    assert len(manifest["skipped_views"]) == 1
    skip = manifest["skipped_views"][0]
    assert (skip["dose"], skip["view"]) == (1000.0, "sparse")
    assert "not found" in skip["reason"]
    assert manifest["skipped_count"] == 1
    assert manifest["dry_run"] is True
    assert manifest["filters"] == {"dose": 1000.0, "view": None, "gridsize": None}
    root = Path(manifest["artifact_root"])
    summary = json.loads((root / manifest["skip_summary_path"]).read_text())
    assert summary["skipped_views"] == manifest["skipped_views"]
    assert summary["skipped_count"] == 1
    on_disk = json.loads((root / "training_manifest.json").read_text())
    assert on_disk["jobs"] == manifest["jobs"]
    for job in manifest["jobs"]:
        log = Path(job["log_path"]).read_text()
        assert f"DRY RUN: {job['view']} dose=1000.0 gridsize={job['gridsize']}" in log


def test_default_artifact_root_is_a_folder_per_run(client: TestClient, study: StudyTree) -> None:
    first = client.post("/runs", json=study.body(dry_run=True)).json()
    second = client.post("/runs", json=study.body(dry_run=True)).json()
    assert first["artifact_root"] == str(study.data_root.resolve() / "runs" / str(first["id"]))
    assert second["artifact_root"] != first["artifact_root"]
    assert Path(second["manifest_path"]).is_file()


def test_strict_run_missing_sparse_is_refused_and_stores_nothing(
    client: TestClient, study: StudyTree
) -> None:
    body = study.body(filters={"dose": 1000}, dry_run=True, strict=True)
    response = client.post("/runs", json=body)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    named = " ".join(error["msg"] for error in detail)
    for name in SPARSE_1000:
        assert str(study.phase_d.resolve() / name) in named
    assert {tuple(error["loc"]) for error in detail} == {("body", "phase_d_root")}
    assert _runs_stored(client) == 0
    assert not (study.data_root / "runs").exists()


def test_whole_design_gives_eight_jobs_and_one_skip(client: TestClient, study: StudyTree) -> None:
    response = client.post("/runs", json=study.body())
    assert response.status_code == 201, response.text
    run = response.json()
    assert run["status"] == "queued"
    assert run["job_count"] == 8
    assert len(run["jobs"]) == 8
    assert all(job["status"] == "queued" for job in run["jobs"])
    assert [(s["dose"], s["view"]) for s in run["skipped_views"]] == [(1000.0, "sparse")]
    assert run["skipped_count"] == 1
    order = [(j["dose"], j["view"]) for j in client.get(f"/runs/{run['id']}/jobs").json()["data"]]
    assert order == [
        (1000.0, "baseline"),
        (1000.0, "dense"),
        (10000.0, "baseline"),
        (10000.0, "dense"),
        (10000.0, "sparse"),
        (100000.0, "baseline"),
        (100000.0, "dense"),
        (100000.0, "sparse"),
    ]


def test_missing_phase_c_is_refused_even_when_not_strict(
    client: TestClient, data_root: Path
) -> None:
    tree = make_study_tree(data_root, doses=(1e4,), missing=())
    response = client.post("/runs", json=tree.body(dry_run=True))
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert {tuple(error["loc"]) for error in detail} == {("body", "phase_c_root")}
    named = " ".join(error["msg"] for error in detail)
    for dose in ("dose_1000", "dose_100000"):
        for split in ("train", "test"):
            assert str(tree.phase_c.resolve() / dose / f"patched_{split}.npz") in named
    assert _runs_stored(client) == 0


def test_both_phase_d_layouts_are_read(client: TestClient, data_root: Path) -> None:
    primary = make_study_tree(data_root, doses=(1e4,), missing=(), prefix="primary")
    fallback = make_study_tree(
        data_root, doses=(1e4,), missing=(), prefix="fallback", layout="fallback"
    )
    for tree, name in ((primary, "dense_train.npz"), (fallback, "train.npz")):
        body = tree.body(dry_run=True, design={"doses": [1e4]}, filters={"view": "dense"})
        response = client.post("/runs", json=body)
        assert response.status_code == 201, response.text
        (job,) = response.json()["jobs"]
        assert Path(job["train_data_path"]) == tree.phase_d.resolve() / "dose_10000/dense" / name
        assert response.json()["skipped_views"] == []


def _rows(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        return {
            table: connection.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar_one()
            for table in ("run", "job", "skipevent")
        }


@pytest.mark.parametrize(
    ("blocked", "words"),
    [
        ("name_too_long", "longer than 255 bytes"),  # refused by its text, before any I/O
        ("file_in_the_way", "could not be written"),
    ],
)
def test_dry_run_whose_files_cannot_be_written_stores_nothing(
    client: TestClient, api_engine: Engine, study: StudyTree, blocked: str, words: str
) -> None:
    if blocked == "name_too_long":
        artifact_root = "x" * 300  # longer than a file name may be
    else:
        artifact_root = "blocked/run"
        (study.data_root / "blocked").write_text("not a folder")
    body = study.body(filters={"dose": 1000}, dry_run=True, artifact_root=artifact_root)

    response = client.post("/runs", json=body)

    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "artifact_root"]
    assert words in error["msg"], error
    assert _rows(api_engine) == {"run": 0, "job": 0, "skipevent": 0}
    assert _runs_stored(client) == 0
