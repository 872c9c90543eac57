"""crud functions on a session: one transaction per run, and log chunks on line boundaries."""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func
from sqlmodel import Session, select

from app import crud, queue, submission
from app.core.config import Settings
from app.errors import RequestInvalid
from app.models import Attempt, Job, Run, SkipEvent
from app.options import RunCreate
from app.study.jobs import Enumeration, JobSpec
from tests.api.conftest import make_study_tree


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    root = tmp_path / "data"
    root.mkdir()
    return Settings(data_root=root, database_url=f"sqlite:///{tmp_path / 'test.db'}")


def _rows(session: Session) -> dict[str, int]:
    return {
        model.__name__: session.exec(select(func.count()).select_from(model)).one()
        for model in (Run, Job, SkipEvent, Attempt)
    }


def test_refused_run_leaves_no_row(session: Session, settings: Settings) -> None:
    tree = make_study_tree(settings.data_root)
    body = RunCreate.model_validate(tree.body(strict=True))
    with pytest.raises(RequestInvalid) as refused:
        submission.create_run(session=session, body=body, settings=settings)
    assert len(refused.value.errors) == 4  # both layouts' train and test files of sparse @ 1e3
    assert _rows(session) == {"Run": 0, "Job": 0, "SkipEvent": 0, "Attempt": 0}
    created = submission.create_run(
        session=session, body=RunCreate.model_validate(tree.body()), settings=settings
    )
    assert _rows(session) == {"Run": 1, "Job": 8, "SkipEvent": 1, "Attempt": 0}
    assert [job.position for job in created.jobs] == list(range(8))
    assert all(job.max_attempts == settings.max_attempts for job in created.jobs)


def test_run_status_follows_its_jobs(session: Session, settings: Settings, engine: Engine) -> None:
    tree = make_study_tree(settings.data_root)
    body = RunCreate.model_validate(tree.body(filters={"dose": 1e5}))
    run = submission.create_run(session=session, body=body, settings=settings)
    assert crud.read_run(session=session, run_id=run.id).status == "queued"
    session.rollback()  # on SQLite every transaction holds the write lock (BEGIN IMMEDIATE)
    claimed = queue.claim_next_job(engine=engine, worker="w", lease_s=60)
    assert claimed is not None
    running = crud.list_runs(session=session, offset=0, limit=10, status="running")
    assert [r.id for r in running.data] == [run.id]
    assert running.data[0].counts == {"queued": 2, "running": 1}
    session.rollback()
    result = {"status": "succeeded", "final_loss": 0.5}
    assert queue.complete_job(
        engine=engine, job_id=claimed.job_id, lease_token=claimed.lease_token, result=result
    )
    job = crud.read_job(session=session, job_id=claimed.job_id)
    assert (job.status, job.result) == ("succeeded", result)
    assert job.attempt_history[0].outcome == "succeeded"


def test_log_chunks_end_on_whole_lines(
    session: Session, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = make_study_tree(settings.data_root)
    body = RunCreate.model_validate(tree.body(filters={"dose": 1e4, "view": "baseline"}))
    (job,) = submission.create_run(session=session, body=body, settings=settings).jobs
    lines = ["first line\n", "second: é\n", "third\n"]
    Path(job.log_path).parent.mkdir(parents=True, exist_ok=True)
    Path(job.log_path).write_text("".join(lines), encoding="utf-8")
    monkeypatch.setattr(crud, "LOG_CHUNK_BYTES", 16)
    offset, texts = 0, []
    while True:
        chunk = crud.read_job_log(
            session=session, job_id=job.id, offset=offset, data_root=settings.data_root
        )
        if not chunk.text:
            break
        texts.append(chunk.text)
        offset = chunk.next_offset
    assert texts == lines
    assert offset == chunk.size == len("".join(lines).encode())


def test_jobs_are_enumerated_before_the_write_lock_is_taken(
    session: Session, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = make_study_tree(settings.data_root)
    enumerate_jobs = submission.enumerate_jobs

    def enumerate_while_writing(**kwargs: Any) -> Enumeration:
        # Succeeds only while nobody holds SQLite's write lock: busy timeout 0, no waiting.
        other = sqlite3.connect(tmp_path / "test.db", timeout=0, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            other.execute("ROLLBACK")
        finally:
            other.close()
        return enumerate_jobs(**kwargs)

    monkeypatch.setattr(submission, "enumerate_jobs", enumerate_while_writing)
    created = submission.create_run(
        session=session, body=RunCreate.model_validate(tree.body()), settings=settings
    )
    assert created.job_count == 8
    assert _rows(session) == {"Run": 1, "Job": 8, "SkipEvent": 1, "Attempt": 0}


def test_dry_run_refused_on_a_full_disk_leaves_no_row_and_no_folder(
    session: Session, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = make_study_tree(settings.data_root)
    body = RunCreate.model_validate(tree.body(filters={"dose": 1e4}, dry_run=True))
    write_dry_run_logs = submission.write_dry_run_logs

    def disk_fills_up(jobs: list[JobSpec], **options: Any) -> None:
        write_dry_run_logs(jobs[:1], **options)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(submission, "write_dry_run_logs", disk_fills_up)
    with pytest.raises(RequestInvalid) as refused:
        submission.create_run(session=session, body=body, settings=settings)
    (error,) = refused.value.errors
    assert error["loc"] == ["body", "artifact_root"]
    assert "No space left on device" in error["msg"]
    assert _rows(session) == {"Run": 0, "Job": 0, "SkipEvent": 0, "Attempt": 0}
    assert not (settings.data_root / "runs" / "1").exists()

    monkeypatch.setattr(submission, "write_dry_run_logs", write_dry_run_logs)
    created = submission.create_run(session=session, body=body, settings=settings)
    assert created.id == 1  # the refused run's id, and so its folder, is used again
    log = Path(created.jobs[0].log_path).read_text()
    assert log == "DRY RUN: baseline dose=10000.0 gridsize=1\n"
