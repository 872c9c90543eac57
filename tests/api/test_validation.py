"""Bad POST /runs bodies: each is a 422 naming the field and why, and nothing is stored."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.core.config import Settings
from app.main import create_app
from tests.api.conftest import TEST_HOSTS, StudyTree


def _refused(client: TestClient, body: dict[str, Any]) -> list[dict[str, Any]]:
    response = client.post("/runs", json=body)
    assert response.status_code == 422, response.text
    assert client.get("/runs").json()["count"] == 0
    detail: list[dict[str, Any]] = response.json()["detail"]
    return detail


@pytest.mark.parametrize(
    ("change", "loc", "words"),
    [
        ({"phase_c_root": "../outside"}, ["body", "phase_c_root"], "outside the data root"),
        ({"phase_d_root": "/etc"}, ["body", "phase_d_root"], "outside the data root"),
        ({"artifact_root": "/tmp/elsewhere"}, ["body", "artifact_root"], "outside the data root"),
        ({"filters": {"view": "medium"}}, ["body", "filters", "view"], "'baseline', 'dense'"),
        ({"filters": {"dose": -5}}, ["body", "filters", "dose"], "greater than 0"),
        ({"design": {"doses": [-1000]}}, ["body", "design", "doses"], "positive"),
        ({"design": {"views": ["dense", "wide"]}}, ["body", "design", "views", 1], "'sparse'"),
        ({"colour": "blue"}, ["body", "colour"], "Extra inputs are not permitted"),
        ({"training": {"epoch": 3}}, ["body", "training", "epoch"], "Extra inputs"),
        ({"training": {"loss": "mse"}}, ["body", "training", "loss"], "'poisson' or 'mae'"),
        ({"execution": {"accelerator": "tpu"}}, ["body", "execution", "accelerator"], "'gpu'"),
        ({"filters": {"dose": 3000}}, ["body", "filters"], "select nothing"),
    ],
)
def test_bad_input_names_the_field(
    client: TestClient, study: StudyTree, change: dict[str, Any], loc: list[Any], words: str
) -> None:
    detail = _refused(client, {**study.body(), **change})
    matching = [error for error in detail if error["loc"] == loc]
    assert matching, detail
    assert words in matching[0]["msg"], matching[0]


def test_missing_required_field_is_named(client: TestClient, study: StudyTree) -> None:
    body = study.body()
    del body["phase_d_root"]
    detail = _refused(client, body)
    assert detail[0]["loc"] == ["body", "phase_d_root"]
    assert detail[0]["type"] == "missing"


def test_symlink_out_of_the_data_root_is_refused(
    client: TestClient, study: StudyTree, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (study.data_root / "link").symlink_to(outside, target_is_directory=True)
    detail = _refused(client, study.body(artifact_root="link/run"))
    assert detail == [
        {
            "loc": ["body", "artifact_root"],
            "msg": f"'link/run' resolves outside the data root '{study.data_root.resolve()}'",
            "type": "path_outside_data_root",
        }
    ]


def test_too_many_jobs_are_refused(client: TestClient, study: StudyTree) -> None:
    doses = [float(d) for d in range(1, 7000)]
    detail = _refused(client, study.body(design={"doses": doses}))
    assert detail[0]["loc"] == ["body", "design", "doses"]
    assert "exceed the limit of 20000" in detail[0]["msg"]


@pytest.mark.parametrize(
    ("doses", "named"), [([1000, 1000.5], "1000.0, 1000.5"), ([0.3, 0.6], "0.3, 0.6")]
)
def test_doses_sharing_a_folder_are_refused(
    client: TestClient, study: StudyTree, doses: list[float], named: str
) -> None:
    detail = _refused(client, study.body(design={"doses": doses}, dry_run=True))
    assert detail[0]["loc"] == ["body", "design", "doses"]
    assert named in detail[0]["msg"]
    assert "dose_" in detail[0]["msg"]


def _created(client: TestClient, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/runs", json=body)
    assert response.status_code == 201, response.text
    run: dict[str, Any] = response.json()
    return run


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("studies/a", "studies/a"),  # the same folder
        ("studies/a", "studies"),  # a parent of it
        ("studies/a", "studies/a/dose_1000"),  # a folder inside it
        (None, "runs/1"),  # the first run's default folder
    ],
)
def test_artifact_root_of_another_run_is_refused(
    client: TestClient, study: StudyTree, first: str | None, second: str
) -> None:
    earlier = _created(client, study.body(dry_run=True, artifact_root=first))
    manifest = Path(earlier["manifest_path"])
    written = manifest.read_text()

    response = client.post("/runs", json=study.body(dry_run=True, artifact_root=second))

    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "artifact_root"]
    assert f"run {earlier['id']} ({earlier['artifact_root']})" in error["msg"], error
    assert client.get("/runs").json()["count"] == 1
    assert manifest.read_text() == written


@pytest.mark.parametrize(
    ("artifact_root", "words"),
    [
        (".", "is the data root"),
        ("db", "overlaps the database file"),
        ("db/jobs.db", "overlaps the database file"),
        ("runs", "default artifact folders"),
        ("runs/12", "default artifact folders"),
        ("study/phase_c", "overlaps the study input phase_c_root"),
        ("study/phase_c/dose_1000/out", "overlaps the study input phase_c_root"),
        ("study", "overlaps the study input phase_c_root"),
        ("study/phase_d", "overlaps the study input phase_d_root"),
    ],
)
def test_artifact_root_over_the_data_root_database_or_default_folders_is_refused(
    study: StudyTree, artifact_root: str, words: str
) -> None:
    database = study.data_root / "db" / "jobs.db"
    settings = Settings(
        data_root=study.data_root, database_url=f"sqlite:///{database}", trusted_hosts=TEST_HOSTS
    )
    with TestClient(create_app(settings)) as client:
        detail = _refused(client, study.body(artifact_root=artifact_root))
    assert detail[0]["loc"] == ["body", "artifact_root"]
    assert words in detail[0]["msg"], detail
    assert database.is_file()


def test_sibling_and_default_artifact_roots_are_accepted(
    client: TestClient, study: StudyTree
) -> None:
    roots = [_created(client, study.body(dry_run=True, artifact_root=root))["artifact_root"]
             for root in ("studies/a", "studies/ab", None, "studies/b", None)]  # fmt: skip
    data_root = study.data_root.resolve()
    assert roots == [
        str(data_root / "studies/a"),
        str(data_root / "studies/ab"),
        str(data_root / "runs/3"),
        str(data_root / "studies/b"),
        str(data_root / "runs/5"),
    ]
