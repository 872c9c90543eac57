"""Symlinks in the data root lead nowhere: not at submit, not after it, not in a race."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from app.core.config import Settings
from app.errors import PathRefused
from app.queue import ClaimedJob
from app.study.contract import ContractError, load_split
from app.study.design import dose_dirname
from app.study.npz import ReadLimits, read_limits
from tests.api.conftest import StudyTree, write_split
from tests.security.conftest import row_counts
from worker.executors.training import check_job_paths
from worker.reporting import append_log

SECRET = "SECRET outside the data root"


def _dry_run(client: TestClient, study: StudyTree) -> dict[str, Any]:
    body = study.body(dry_run=True, filters={"dose": 1e3, "view": "baseline"})
    response = client.post("/runs", json=body)
    assert response.status_code == 201, response.text
    run: dict[str, Any] = response.json()
    return run


def _swap_for_link(folder: Path, target: Path) -> None:
    folder.rename(folder.with_name(folder.name + ".moved"))
    folder.symlink_to(target, target_is_directory=True)


@pytest.mark.parametrize("linked", ["phase_d", "phase_c"])
def test_a_study_folder_that_is_a_symlink_is_refused_at_submit(
    client: TestClient, engine: Engine, study: StudyTree, outside: Path, linked: str
) -> None:
    root = study.phase_d if linked == "phase_d" else study.phase_c
    folder = root / dose_dirname(1e4)
    (outside / folder.name).mkdir()
    for child in folder.iterdir():  # the same files, outside the data root
        child.rename(outside / folder.name / child.name)
    folder.rmdir()
    folder.symlink_to(outside / folder.name, target_is_directory=True)
    before = row_counts(engine)

    response = client.post("/runs", json=study.body(dry_run=True))

    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", f"{linked}_root"]
    assert "symlink" in error["msg"]
    assert row_counts(engine) == before


def test_an_artifact_folder_swapped_for_a_symlink_is_never_read(
    client: TestClient, study: StudyTree, outside: Path
) -> None:
    run = _dry_run(client, study)
    (job,) = run["jobs"]
    _swap_for_link(Path(job["artifact_dir"]).parent, outside)  # dose_1000 → outside

    for url in (f"/jobs/{job['id']}/log", f"/jobs/{job['id']}/artifacts/train.log"):
        response = client.get(url)
        assert response.status_code == 409, (url, response.text)
        assert SECRET not in response.text
        assert "symlink" in response.json()["detail"]
    assert client.get(f"/jobs/{job['id']}/history").status_code == 409


def test_a_run_folder_swapped_for_a_symlink_gets_no_manifest(
    client: TestClient, study: StudyTree, outside: Path
) -> None:
    run = _dry_run(client, study)
    run_folder = Path(run["artifact_root"])
    _swap_for_link(run_folder, outside)
    before = sorted(p.name for p in outside.iterdir())

    assert client.post(f"/runs/{run['id']}/cancel").status_code == 200  # rewrites the manifest

    assert sorted(p.name for p in outside.iterdir()) == before


def test_log_reads_during_a_swap_race_never_leave_the_data_root(
    client: TestClient, study: StudyTree, outside: Path
) -> None:
    run = _dry_run(client, study)
    (job,) = run["jobs"]
    folder = Path(job["artifact_dir"])  # runs/1/dose_1000/baseline/gs1
    (outside / "train.log").write_text(f"{SECRET}\n" * 100)
    stop = threading.Event()

    def swap() -> None:
        real, link = folder.with_name("gs1.real"), folder.with_name("gs1.link")
        link.symlink_to(outside, target_is_directory=True)
        while not stop.is_set():  # each state lasts a moment: requests meet both
            os.rename(folder, real)
            os.rename(link, folder)
            time.sleep(0.0005)
            os.rename(folder, link)
            os.rename(real, folder)
            time.sleep(0.0005)

    swapper = threading.Thread(target=swap)
    swapper.start()
    seen: dict[int, int] = {}
    try:
        for _ in range(400):
            response = client.get(f"/jobs/{job['id']}/log")
            seen[response.status_code] = seen.get(response.status_code, 0) + 1
            assert SECRET not in response.text
    finally:
        stop.set()
        swapper.join()
    assert set(seen) <= {200, 409}, seen
    assert seen.get(200), seen  # both states were met
    assert seen.get(409), seen


def _claimed(job: dict[str, Any]) -> ClaimedJob:
    fields = ("train_data_path", "test_data_path", "artifact_dir", "log_path")
    return ClaimedJob(
        job_id=job["id"],
        run_id=job["run_id"],
        position=job["position"],
        lease_token="t",
        attempt=1,
        worker="w",
        dose=job["dose"],
        view=job["view"],
        gridsize=job["gridsize"],
        **{field: job[field] for field in fields},
    )


def test_the_worker_checks_the_paths_again_before_a_job(
    client: TestClient, settings: Settings, study: StudyTree, outside: Path
) -> None:
    (job,) = _dry_run(client, study)["jobs"]
    check_job_paths(_claimed(job), settings.data_root)  # as submitted: fine
    _swap_for_link(Path(job["artifact_dir"]).parent, outside)
    with pytest.raises(PathRefused, match="symlink"):
        check_job_paths(_claimed(job), settings.data_root)


def test_the_worker_reads_data_only_through_no_symlink(study: StudyTree, outside: Path) -> None:
    split = study.phase_c / dose_dirname(1e3) / "patched_train.npz"
    write_split(outside / "elsewhere.npz")
    split.unlink()
    split.symlink_to(outside / "elsewhere.npz")
    load_split(split)  # the CLI's reads follow links the user made
    with (
        read_limits(ReadLimits(root=study.data_root)),
        pytest.raises(ContractError, match="symlink"),
    ):
        load_split(split)


def test_the_worker_never_appends_to_a_log_through_a_symlink(
    study: StudyTree, outside: Path
) -> None:
    folder = study.data_root / "runs" / "7"
    folder.parent.mkdir(parents=True, exist_ok=True)
    folder.symlink_to(outside, target_is_directory=True)
    append_log(folder / "train.log", "attempt 1 started")  # refused, and logged
    assert (outside / "train.log").read_text() == "SECRET outside the data root\n"
