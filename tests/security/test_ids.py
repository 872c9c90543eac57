"""A run's id and folder are never another's: files no run owns are refused or set aside."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from tests.api.conftest import StudyTree
from tests.security.conftest import row_counts


def test_a_dead_submission_s_default_folder_is_set_aside_not_reused(
    client: TestClient, study: StudyTree
) -> None:
    # What a submission killed before its commit leaves: runs/1 with files, and no run 1.
    stale = study.data_root / "runs" / "1"
    (stale / "dose_1000" / "baseline" / "gs1").mkdir(parents=True)
    (stale / "dose_1000" / "baseline" / "gs1" / "train.log").write_text("stale attempt\n")
    (stale / "training_manifest.json").write_text('{"stale": true}')

    created = client.post("/runs", json=study.body(dry_run=True, filters={"dose": 1000.0}))

    assert created.status_code == 201, created.text
    run = created.json()
    assert run["id"] == 1
    assert run["artifact_root"] == str(stale.resolve())
    log = Path(client.get("/runs/1/jobs").json()["data"][0]["log_path"])
    assert "stale attempt" not in log.read_text()
    assert "stale" not in (stale / "training_manifest.json").read_text()
    (aside,) = (study.data_root / "runs" / ".abandoned").iterdir()
    assert aside.name.startswith("1-")
    assert (aside / "dose_1000" / "baseline" / "gs1" / "train.log").read_text() == "stale attempt\n"


def test_a_chosen_folder_holding_files_no_run_owns_is_refused(
    client: TestClient, engine: Engine, study: StudyTree
) -> None:
    chosen = study.data_root / "studies" / "mine"
    chosen.mkdir(parents=True)
    (chosen / "notes.txt").write_text("my notes\n")

    refused = client.post("/runs", json=study.body(dry_run=True, artifact_root="studies/mine"))

    assert refused.status_code == 422, refused.text
    (error,) = refused.json()["detail"]
    assert error["loc"] == ["body", "artifact_root"]
    assert "already holds files that no run owns (notes.txt)" in error["msg"]
    assert row_counts(engine)["run"] == 0
    assert sorted(path.name for path in chosen.iterdir()) == ["notes.txt"]
