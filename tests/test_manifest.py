"""The training manifest (study.md §7) built from a real SQLite database."""

from __future__ import annotations

import fcntl
import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event
from sqlmodel import Session

from app.core.files import isoformat_z
from app.errors import NotFound
from app.manifest import build_manifest, write_manifest
from app.models import Attempt, AttemptOutcome, Job, JobStatus, Run, SkipEvent, utcnow

T0 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
RESULT = {
    "status": "succeeded",
    "final_loss": 0.125,
    "epochs_completed": 2,
    "checkpoint_path": "checkpoints/last.ckpt",
    "bundle_path": "bundle.zip",
    "bundle_sha256": "ab" * 32,
    "bundle_size_bytes": 1234,
    "metrics": {"amplitude_mae": 0.04, "phase_ssim": 0.7},
}
STUDY_KEYS = {
    "timestamp": str,
    "phase_c_root": str,
    "phase_d_root": str,
    "artifact_root": str,
    "filters": dict,
    "dry_run": bool,
    "jobs": list,
    "skipped_views": list,
    "skipped_count": int,
    "skip_summary_path": str,
}
STUDY_JOB_KEYS = {
    "dose": float,
    "view": str,
    "gridsize": int,
    "train_data_path": str,
    "test_data_path": str,
    "log_path": str,
    "artifact_dir": str,
    "result": dict,
}


def _job(run_id: int, position: int, view: str, status: JobStatus, **fields: Any) -> Job:
    artifact_dir = f"/art/dose_1000/{view}/gs{1 if view == 'baseline' else 2}"
    return Job(
        run_id=run_id,
        position=position,
        dose=1000,
        view=view,
        gridsize=1 if view == "baseline" else 2,
        train_data_path=f"/data/{view}_train.npz",
        test_data_path=f"/data/{view}_test.npz",
        log_path=f"{artifact_dir}/train.log",
        artifact_dir=artifact_dir,
        status=status,
        created_at=T0,
        **fields,
    )


def _make_run(session: Session, artifact_root: Path, *, dry_run: bool = False) -> Run:
    run = Run(
        phase_c_root="/data/phase_c",
        phase_d_root="/data/phase_d",
        artifact_root=str(artifact_root),
        dry_run=dry_run,
        filters={"dose": 1000.0},
        design={"doses": [1000.0]},
    )
    session.add(run)
    session.commit()
    assert run.id is not None
    return run


@pytest.fixture
def run_id(session: Session, tmp_path: Path) -> int:
    """A run mid-way: one job succeeded after a retry, one failed, one running; one skip."""
    run = _make_run(session, tmp_path / "artifacts")
    assert run.id is not None
    running = _job(run.id, 2, "sparse", JobStatus.running, progress_epoch=1, progress_step=7)
    running.progress_loss = float("nan")  # a diverging loss must not break strict JSON
    done = _job(run.id, 0, "baseline", JobStatus.succeeded, result=RESULT, started_at=T0)
    done.finished_at = T0 + timedelta(minutes=2)
    failed = _job(run.id, 1, "dense", JobStatus.failed, error="ContractError: bad key")
    session.add_all([running, done, failed])  # inserted out of position order on purpose
    session.commit()
    ended = T0 + timedelta(minutes=1)
    session.add_all(
        [
            Attempt(job_id=done.id, number=2, worker="w2", lease_token="b", started_at=ended,
                    ended_at=done.finished_at, outcome=AttemptOutcome.succeeded),
            Attempt(job_id=done.id, number=1, worker="w1", lease_token="a", started_at=T0,
                    ended_at=ended, outcome=AttemptOutcome.expired, error="lease expired"),
            Attempt(job_id=failed.id, number=1, worker="w1", lease_token="c",
                    outcome=AttemptOutcome.failed, error="ContractError: bad key"),
            SkipEvent(run_id=run.id, dose=1000, view="sparse", code="data_missing",
                      reason="Phase D NPZ files not found", train_exists=False,
                      test_exists=True, details={"layouts_checked": []}),
        ]
    )  # fmt: skip
    session.commit()
    return run.id


def _strict_json(path: Path) -> Any:
    def refuse(constant: str) -> None:
        raise ValueError(f"{path} holds {constant}, which is not JSON")

    return json.loads(path.read_text(), parse_constant=refuse)


def test_manifest_has_the_study_schema(session: Session, run_id: int) -> None:
    manifest = build_manifest(session=session, run_id=run_id)

    for key, kind in STUDY_KEYS.items():
        assert isinstance(manifest[key], kind), key
    assert manifest["timestamp"].endswith("Z")
    datetime.fromisoformat(manifest["timestamp"].removesuffix("Z"))
    assert manifest["filters"] == {"dose": 1000.0, "view": None, "gridsize": None}
    assert manifest["skip_summary_path"] == "skip_summary.json"
    assert [job["view"] for job in manifest["jobs"]] == ["baseline", "dense", "sparse"]
    for job in manifest["jobs"]:
        for key, kind in STUDY_JOB_KEYS.items():
            assert isinstance(job[key], kind), key
    assert manifest["jobs"][0]["dose"] == 1000.0
    assert manifest["jobs"][0]["result"] == RESULT
    assert manifest["jobs"][1]["result"] == {"status": "failed"}
    assert manifest["skipped_views"] == [
        {"dose": 1000.0, "view": "sparse", "reason": "Phase D NPZ files not found",
         "code": "data_missing", "train_exists": False, "test_exists": True}
    ]  # fmt: skip
    assert manifest["skipped_count"] == 1


def test_manifest_carries_our_extra_keys(session: Session, run_id: int) -> None:
    manifest = build_manifest(session=session, run_id=run_id)

    assert manifest["run_id"] == run_id
    assert manifest["status"] == "running"
    assert manifest["counts"] == {
        "queued": 0, "running": 1, "succeeded": 1, "failed": 1, "cancelled": 0, "dry_run": 0
    }  # fmt: skip
    done, failed, running = manifest["jobs"]
    assert [job["status"] for job in manifest["jobs"]] == ["succeeded", "failed", "running"]
    assert [(a["number"], a["worker"], a["outcome"]) for a in done["attempts"]] == [
        (1, "w1", "expired"),
        (2, "w2", "succeeded"),
    ]
    assert done["attempts"][0]["error"] == "lease expired"
    assert done["attempts"][0]["ended_at"] == "2025-03-01T12:01:00.000Z"
    assert done["timings"] == {
        "created_at": "2025-03-01T12:00:00.000Z",
        "started_at": "2025-03-01T12:00:00.000Z",
        "finished_at": "2025-03-01T12:02:00.000Z",
    }
    assert done["metrics"] == RESULT["metrics"]
    assert failed["error"] == "ContractError: bad key"
    assert failed["metrics"] is None
    assert running["progress"] == {"epoch": 1, "step": 7, "loss": None}
    assert running["attempts"] == []


def test_write_manifest_writes_both_files_atomically(
    engine: Engine, session: Session, run_id: int, tmp_path: Path
) -> None:
    path = write_manifest(session=session, run_id=run_id)
    first_inode = path.stat().st_ino

    assert path == tmp_path / "artifacts" / "training_manifest.json"
    manifest = _strict_json(path)
    summary = _strict_json(path.parent / "skip_summary.json")
    assert summary == {
        key: manifest[key] for key in ("timestamp", "skipped_views", "skipped_count")
    }
    assert manifest["jobs"][2]["progress"]["loss"] is None

    with Session(engine) as other:
        job = other.get(Job, manifest["jobs"][2]["id"])
        assert job is not None
        job.status = JobStatus.succeeded
        other.commit()
    write_manifest(session=session, run_id=run_id)

    rewritten = _strict_json(path)
    assert rewritten["jobs"][2]["status"] == "succeeded"
    assert rewritten["status"] == "failed"
    assert path.stat().st_ino != first_inode  # renamed over, never rewritten in place
    assert sorted(p.name for p in path.parent.iterdir()) == [
        ".training_manifest.json.lock",  # writers serialize on it; it stays, empty
        "skip_summary.json",
        "training_manifest.json",
    ]


def test_skip_summary_is_written_when_nothing_was_skipped(session: Session, tmp_path: Path) -> None:
    run = _make_run(session, tmp_path / "dry", dry_run=True)
    assert run.id is not None
    session.add(_job(run.id, 0, "baseline", JobStatus.dry_run))
    session.commit()

    path = write_manifest(session=session, run_id=run.id)

    manifest = _strict_json(path)
    assert manifest["dry_run"] is True
    assert manifest["status"] == "dry_run"
    assert manifest["jobs"][0]["result"] == {"status": "dry_run"}
    summary = _strict_json(path.parent / "skip_summary.json")
    assert summary["skipped_views"] == []
    assert summary["skipped_count"] == 0


def test_unknown_run_is_reported(session: Session) -> None:
    with pytest.raises(NotFound, match="run 999 not found") as missing:
        build_manifest(session=session, run_id=999)
    assert (missing.value.entity, missing.value.key) == ("run", 999)
    with pytest.raises(NotFound):
        write_manifest(session=session, run_id=999)


def _count_queries(engine: Engine, session: Session, run_id: int) -> int:
    statements: list[str] = []

    def record(*args: Any) -> None:
        statements.append(args[2])

    event.listen(engine, "before_cursor_execute", record)
    try:
        build_manifest(session=session, run_id=run_id)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return len(statements)


def test_query_count_does_not_grow_with_the_run(
    engine: Engine, session: Session, tmp_path: Path
) -> None:
    sizes = {}
    for n_jobs in (1, 40):
        run = _make_run(session, tmp_path / f"n{n_jobs}")
        assert run.id is not None
        jobs = [_job(run.id, i, "dense", JobStatus.failed) for i in range(n_jobs)]
        session.add_all(jobs)
        session.commit()
        session.add_all(
            [Attempt(job_id=job.id, number=1, worker="w", lease_token="t") for job in jobs]
        )
        session.commit()
        session.expunge_all()  # a cold session, as a request would have
        sizes[n_jobs] = _count_queries(engine, session, run.id)

    assert sizes[1] == sizes[40]


def test_write_manifest_leaves_the_callers_transaction_alone(
    engine: Engine, session: Session, run_id: int
) -> None:
    write_manifest(session=session, run_id=run_id)
    assert not session.in_transaction()  # an idle caller's read lock is released

    run = session.get(Run, run_id)
    assert run is not None
    run.strict = True  # pending in the caller's transaction
    write_manifest(session=session, run_id=run_id)
    session.rollback()

    with Session(engine) as other:
        stored = other.get(Run, run_id)
        assert stored is not None
        assert stored.strict is False


def _set_job(engine: Engine, job_id: int, status: JobStatus, updated_at: datetime) -> None:
    with Session(engine) as other:
        job = other.get(Job, job_id)
        assert job is not None
        job.status, job.updated_at = status, updated_at
        other.commit()


def test_an_older_snapshot_never_replaces_a_newer_manifest(
    engine: Engine, session: Session, run_id: int
) -> None:
    running_id = build_manifest(session=session, run_id=run_id)["jobs"][2]["id"]
    session.commit()
    later = utcnow() + timedelta(hours=1)
    _set_job(engine, running_id, JobStatus.succeeded, later + timedelta(seconds=1))
    path = write_manifest(session=session, run_id=run_id)
    newer = _strict_json(path)
    # What a second writer saw before the job ended; its write comes last.
    _set_job(engine, running_id, JobStatus.running, later)
    write_manifest(session=session, run_id=run_id)

    on_disk = _strict_json(path)
    assert on_disk["jobs"][2]["status"] == "succeeded"
    assert on_disk["version"] == newer["version"]
    assert _strict_json(path.parent / "skip_summary.json")["timestamp"] == newer["timestamp"]

    _set_job(engine, running_id, JobStatus.failed, later + timedelta(seconds=2))
    write_manifest(session=session, run_id=run_id)
    assert _strict_json(path)["jobs"][2]["status"] == "failed"  # a newer one still lands


def _job_ids(session: Session, run_id: int) -> list[int]:
    ids = [job["id"] for job in build_manifest(session=session, run_id=run_id)["jobs"]]
    session.commit()
    return ids


def test_manifest_version_is_the_newest_job_change(
    engine: Engine, session: Session, run_id: int
) -> None:
    first, second, _ = _job_ids(session, run_id)
    before = build_manifest(session=session, run_id=run_id)["version"]
    session.commit()
    moment = utcnow() + timedelta(hours=1)
    _set_job(engine, first, JobStatus.failed, moment)
    after = build_manifest(session=session, run_id=run_id)["version"]
    session.commit()
    assert after == {"updated_at": isoformat_z(moment, timespec="microseconds"), "updated_jobs": 1}
    assert before["updated_at"] < after["updated_at"]

    _set_job(engine, second, JobStatus.failed, moment)
    tied = build_manifest(session=session, run_id=run_id)["version"]
    assert tied == {**after, "updated_jobs": 2}  # the same instant, one change more


def test_writers_wait_for_the_manifest_lock(session: Session, run_id: int, tmp_path: Path) -> None:
    root = tmp_path / "artifacts"
    root.mkdir()
    lock_path = root / ".training_manifest.json.lock"
    with lock_path.open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # another process checking and replacing
        writer = threading.Thread(
            target=write_manifest, kwargs={"session": session, "run_id": run_id}
        )
        writer.start()
        writer.join(timeout=0.5)
        assert writer.is_alive()
        assert not (root / "training_manifest.json").exists()
    writer.join(timeout=10)
    assert not writer.is_alive()
    assert _strict_json(root / "training_manifest.json")["run_id"] == run_id
