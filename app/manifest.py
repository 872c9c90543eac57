"""The training manifest (study.md §7), built from the database and written atomically."""

from __future__ import annotations

import fcntl
import json
import logging
import math
import os
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import RowMapping
from sqlmodel import Session

from app.models import Attempt, AttemptOutcome, Job, JobStatus, Run, SkipEvent, derive_run_status

logger = logging.getLogger(__name__)

MANIFEST_NAME = "training_manifest.json"
SKIP_SUMMARY_NAME = "skip_summary.json"
LOCK_NAME = f".{MANIFEST_NAME}.lock"
FILTER_KEYS = ("dose", "view", "gridsize")
STUDY_JOB_KEYS = (
    "dose",
    "view",
    "gridsize",
    "train_data_path",
    "test_data_path",
    "log_path",
    "artifact_dir",
)
SKIP_KEYS = ("dose", "view", "reason", "code", "train_exists", "test_exists")


class RunNotFound(Exception):
    """No run has this id."""

    def __init__(self, run_id: int) -> None:
        self.run_id = run_id
        super().__init__(f"run {run_id} not found")


def isoformat_z(moment: datetime | None, *, timespec: str = "milliseconds") -> str | None:
    """UTC ISO-8601 with a trailing Z; naive datetimes are taken as UTC (as stored)."""
    if moment is None:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.isoformat(timespec=timespec) + "Z"


def build_manifest(*, session: Session, run_id: int) -> dict[str, Any]:
    """The run's manifest: the study's keys, then ours (run id, status, counts, attempts …)."""
    run = session.get(Run, run_id)
    if run is None:
        raise RunNotFound(run_id)
    jobs, attempts, skips = _load_rows(session, run_id)
    history: dict[int, list[dict[str, Any]]] = {}
    for attempt in attempts:
        history.setdefault(attempt["job_id"], []).append(_attempt_entry(attempt))
    statuses = [JobStatus(job["status"]) for job in jobs]
    skipped_views = [_skip_entry(skip) for skip in skips]
    # The study's keys first, then ours: ours extend its schema and never replace a key.
    return {
        "timestamp": isoformat_z(datetime.now(UTC)),
        "phase_c_root": run.phase_c_root,
        "phase_d_root": run.phase_d_root,
        "artifact_root": run.artifact_root,
        "filters": {key: run.filters.get(key) for key in FILTER_KEYS},
        "dry_run": run.dry_run,
        "jobs": [_job_entry(job, history.get(job["id"], [])) for job in jobs],
        "skipped_views": skipped_views,
        "skipped_count": len(skipped_views),
        "skip_summary_path": SKIP_SUMMARY_NAME,
        "run_id": run.id,
        "status": derive_run_status(statuses).value,
        "counts": _counts(statuses),
        "created_at": isoformat_z(run.created_at),
        "strict": run.strict,
        "design": run.design,
        "training": run.training,
        "execution": run.execution,
        "version": _version(jobs),
    }


def write_manifest(*, session: Session, run_id: int) -> Path:
    """Write training_manifest.json and skip_summary.json under the run's artifact_root."""
    idle = not (session.in_transaction() or session.new or session.dirty or session.deleted)
    manifest = build_manifest(session=session, run_id=run_id)
    if idle:
        # Every SQLite transaction holds the write lock (BEGIN IMMEDIATE): end the read
        # before the slow file writes rather than stall claims and heartbeats behind them.
        session.commit()
    store_manifest(manifest)
    return Path(manifest["artifact_root"]) / MANIFEST_NAME


def store_manifest(manifest: dict[str, Any]) -> bool:
    """Write a built manifest and its skip summary unless a newer manifest is on disk."""
    root = Path(manifest["artifact_root"])
    root.mkdir(parents=True, exist_ok=True)
    path = root / MANIFEST_NAME
    run_id = manifest["run_id"]
    # Writers (the API, every worker) build from their own snapshots; without the lock, an
    # older snapshot could pass the check and then land after a newer one.
    with _exclusive_lock(root / LOCK_NAME):
        on_disk = _read_version(path)
        if on_disk > _version_key(manifest["version"]):
            logger.info("kept the newer manifest %s", path, extra={"run_id": run_id})
            return False
        summary = {key: manifest[key] for key in ("timestamp", "skipped_views", "skipped_count")}
        _write_json_atomic(root / SKIP_SUMMARY_NAME, summary)
        _write_json_atomic(path, manifest)
    logger.info("wrote manifest %s", path, extra={"run_id": run_id})
    return True


def _version(jobs: Sequence[RowMapping]) -> dict[str, Any]:
    """The newest change to the run's jobs, and how many jobs changed at that instant.

    Every job change sets `updated_at`, and no job row is ever deleted, so a later snapshot
    never has a smaller version; the count orders changes that share one clock reading.
    """
    newest = max((job["updated_at"] for job in jobs), default=None)
    updated_jobs = sum(1 for job in jobs if job["updated_at"] == newest) if jobs else 0
    return {
        "updated_at": isoformat_z(newest, timespec="microseconds"),
        "updated_jobs": updated_jobs,
    }


def _version_key(version: Any) -> tuple[str, int]:
    # Fixed-width UTC timestamps order as strings; a file without a version is the oldest.
    if not isinstance(version, dict):
        return ("", -1)
    updated_at, updated_jobs = version.get("updated_at"), version.get("updated_jobs")
    if not isinstance(updated_at, str) or not isinstance(updated_jobs, int):
        return ("", -1)
    return (updated_at, updated_jobs)


def _read_version(path: Path) -> tuple[str, int]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return ("", -1)
    except (OSError, ValueError) as exc:  # a damaged manifest is replaced, not kept
        logger.warning("replacing unreadable manifest %s: %s", path, exc)
        return ("", -1)
    return _version_key(document.get("version") if isinstance(document, dict) else None)


@contextmanager
def _exclusive_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive flock on `path` (created if missing) across processes."""
    # Opened for writing: on NFS, flock is emulated with POSIX locks, which need it.
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _load_rows(
    session: Session, run_id: int
) -> tuple[Sequence[RowMapping], Sequence[RowMapping], Sequence[RowMapping]]:
    """The run's jobs, attempts and skip events in three queries, whatever the run's size."""
    # Core rows, not ORM objects: a run of thousands of jobs builds in a fraction of the time.
    jobs = sa.inspect(Job).local_table
    attempts = sa.inspect(Attempt).local_table
    skips = sa.inspect(SkipEvent).local_table
    connection = session.connection()
    statements = (
        sa.select(jobs).where(jobs.c.run_id == run_id).order_by(jobs.c.position),
        sa.select(attempts)
        .join(jobs, attempts.c.job_id == jobs.c.id)
        .where(jobs.c.run_id == run_id)
        .order_by(attempts.c.job_id, attempts.c.number, attempts.c.id),
        sa.select(skips).where(skips.c.run_id == run_id).order_by(skips.c.id),
    )
    job_rows, attempt_rows, skip_rows = (
        connection.execute(statement).mappings().all() for statement in statements
    )
    return job_rows, attempt_rows, skip_rows


def _counts(statuses: Iterable[JobStatus]) -> dict[str, int]:
    tally = Counter(statuses)
    return {status.value: tally.get(status, 0) for status in JobStatus}


def _job_entry(job: RowMapping, attempts: list[dict[str, Any]]) -> dict[str, Any]:
    status = JobStatus(job["status"]).value
    result = _json_safe(dict(job["result"] or {}))
    # The job's status is the authority; training's own word (e.g. "stopped") is kept aside.
    training_status = result.pop("status", None)
    if training_status not in (None, status):
        result["training_status"] = training_status
    metrics = result.get("metrics")
    entry = {key: job[key] for key in STUDY_JOB_KEYS}
    entry["dose"] = float(entry["dose"])
    entry["result"] = {"status": status, **result}
    entry.update(
        id=job["id"],
        status=status,
        attempts=attempts,
        progress={
            "epoch": job["progress_epoch"],
            "step": job["progress_step"],
            "loss": _json_safe(job["progress_loss"]),
        },
        timings={key: isoformat_z(job[key]) for key in ("created_at", "started_at", "finished_at")},
        metrics=metrics if isinstance(metrics, dict) else None,
        error=job["error"],
    )
    return entry


def _json_safe(value: Any) -> Any:
    """Strict JSON has no NaN or infinity: a diverged loss becomes null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_safe(item) for item in value]
    return value


def _attempt_entry(attempt: RowMapping) -> dict[str, Any]:
    return {
        "number": attempt["number"],
        "worker": attempt["worker"],
        "started_at": isoformat_z(attempt["started_at"]),
        "ended_at": isoformat_z(attempt["ended_at"]),
        "outcome": AttemptOutcome(attempt["outcome"]).value,
        "error": attempt["error"],
    }


def _skip_entry(skip: RowMapping) -> dict[str, Any]:
    entry = {key: skip[key] for key in SKIP_KEYS}
    entry["dose"] = float(entry["dose"])
    return entry


def _write_json_atomic(path: Path, document: dict[str, Any]) -> None:
    """Write beside the target, fsync, then rename over it: readers see old or new, whole."""
    text = json.dumps(document, indent=2, allow_nan=False)
    fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    # Makes the rename itself durable; not every platform lets a directory be opened.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
