"""A manifest write that fails (a full disk) is owed: the next change and the reaper retry it."""

from __future__ import annotations

import errno
import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session

from app import manifest
from app.main import reap_once
from app.models import Run
from tests.api.conftest import StudyTree
from worker.reporting import ManifestWriter


class FullDisk:
    """Makes every manifest file write fail with ENOSPC while `full` is set."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.full = True
        real = manifest._write_json_atomic

        def write(folder: int, name: str, document: dict[str, Any]) -> None:
            if self.full:
                raise OSError(errno.ENOSPC, "No space left on device")
            real(folder, name, document)

        monkeypatch.setattr(manifest, "_write_json_atomic", write)


def _stale(engine: Engine, run_id: int) -> bool:
    with Session(engine) as session:
        run = session.get(Run, run_id)
        assert run is not None
        return run.manifest_stale


def _manifest_of(client: TestClient, run_id: int) -> Path:
    return Path(client.get(f"/runs/{run_id}").json()["artifact_root"]) / "training_manifest.json"


def test_a_failed_write_is_retried_by_the_next_change_of_another_run(
    client: TestClient, engine: Engine, study: StudyTree, monkeypatch: pytest.MonkeyPatch
) -> None:
    disk = FullDisk(monkeypatch)
    first = client.post("/runs", json=study.body(dry_run=True, artifact_root="a"))
    assert first.status_code == 201, first.text  # the run stands; its manifest is owed
    run_id = first.json()["id"]
    assert _stale(engine, run_id)
    assert not _manifest_of(client, run_id).exists()

    disk.full = False
    second = client.post("/runs", json=study.body(dry_run=True, artifact_root="b"))

    assert second.status_code == 201, second.text
    assert not _stale(engine, run_id)
    written = json.loads(_manifest_of(client, run_id).read_text())
    assert written["run_id"] == run_id
    assert written == client.get(f"/manifests/{run_id}").json() | {
        "timestamp": written["timestamp"]
    }


def test_the_api_s_reaper_and_a_worker_s_sweep_retry_an_owed_manifest(
    client: TestClient, engine: Engine, study: StudyTree, monkeypatch: pytest.MonkeyPatch
) -> None:
    disk = FullDisk(monkeypatch)
    runs = [client.post("/runs", json=study.body(dry_run=True, artifact_root=name)).json()["id"]
            for name in ("a", "b")]  # fmt: skip
    assert all(_stale(engine, run_id) for run_id in runs)
    reap_once(engine, study.data_root.resolve())  # still full: still owed
    assert all(_stale(engine, run_id) for run_id in runs)

    disk.full = False
    reap_once(engine, study.data_root.resolve())
    assert not _stale(engine, runs[0])
    assert _manifest_of(client, runs[0]).is_file()

    # A worker's sweep does the same for what is still owed.
    with Session(engine) as session:
        run = session.get(Run, runs[1])
        assert run is not None
        run.manifest_stale = True
        session.commit()
    _manifest_of(client, runs[1]).unlink()
    ManifestWriter(engine, 60.0, study.data_root.resolve()).retry_owed()
    assert not _stale(engine, runs[1])
    assert _manifest_of(client, runs[1]).is_file()
