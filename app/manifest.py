"""The training manifest (study.md §7), built from the database and written atomically.

Its files are written through a descriptor of the run's folder, opened without following
symlinks (`app.paths`): a folder swapped for a link after submit is refused, not written.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Engine, RowMapping
from sqlmodel import Session, col, select

from app.core.db import read_engine
from app.core.files import finite_tree, isoformat_z
from app.errors import NotFound
from app.models import Attempt, AttemptOutcome, Job, JobStatus, Run, SkipEvent, derive_run_status
from app.options import ALGORITHMS
from app.paths import FILESYSTEM_ROOT, confined_dir, open_in, write_atomic_in
from app.study.overlap_lookup import ProbeOverlaps

logger = logging.getLogger(__name__)

MANIFEST_NAME = "training_manifest.json"
SKIP_SUMMARY_NAME = "skip_summary.json"
RECONSTRUCTION_MANIFEST_NAME = "reconstruction_manifest.json"
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


def build_manifest(*, session: Session, run_id: int) -> dict[str, Any]:
    """The run's manifest: the study's keys, then ours (run id, status, counts, attempts …)."""
    run = session.get(Run, run_id)
    if run is None:
        raise NotFound("run", run_id)
    jobs, attempts, skips = _load_rows(session, run_id)
    history: dict[int, list[dict[str, Any]]] = {}
    for attempt in attempts:
        history.setdefault(attempt["job_id"], []).append(_attempt_entry(attempt))
    statuses = [JobStatus(job["status"]) for job in jobs]
    skipped_views = [_skip_entry(skip) for skip in skips]
    overlaps = ProbeOverlaps(run.phase_d_root)
    training = [job for job in jobs if job["kind"] == "train"]
    reconstructions = [job for job in jobs if job["kind"] == "reconstruct"]
    options = run.reconstruction or {}
    # The study's keys first, then ours: ours extend its schema and never replace a key.
    return {
        "timestamp": isoformat_z(datetime.now(UTC)),
        "phase_c_root": run.phase_c_root,
        "phase_d_root": run.phase_d_root,
        "artifact_root": run.artifact_root,
        "filters": {key: run.filters.get(key) for key in FILTER_KEYS},
        "dry_run": run.dry_run,
        "jobs": [_job_entry(job, history.get(job["id"], []), overlaps) for job in training],
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
        "reconstruction": run.reconstruction,
        "reconstruction_jobs": [
            _reconstruction_entry(job, history.get(job["id"], []), overlaps, options)
            for job in reconstructions
        ],
        "version": _version(jobs),
    }


def write_manifest(*, session: Session, run_id: int, data_root: Path | None = None) -> Path:
    """Write training_manifest.json and skip_summary.json under the run's artifact_root.

    The folder is reached from `data_root` (default: the file system's root; stored paths
    are real paths, so any symlink on the way was put there after submit) without following
    a symlink; PathRefused (an OSError) when one is found.
    """
    idle = not (session.in_transaction() or session.new or session.dirty or session.deleted)
    manifest = build_manifest(session=session, run_id=run_id)
    if idle:
        # Every SQLite transaction holds the write lock (BEGIN IMMEDIATE): end the read
        # before the slow file writes rather than stall claims and heartbeats behind them.
        session.commit()
    store_manifest(manifest, data_root=data_root)
    return Path(manifest["artifact_root"]) / MANIFEST_NAME


def store_manifest(manifest: dict[str, Any], *, data_root: Path | None = None) -> bool:
    """Write a built manifest and its skip summary unless a newer manifest is on disk."""
    root = Path(manifest["artifact_root"])
    run_id = manifest["run_id"]
    # Writers (the API, every worker) build from their own snapshots; without the lock, an
    # older snapshot could pass the check and then land after a newer one.
    with (
        confined_dir(root, root=data_root or FILESYSTEM_ROOT, create=True) as folder,
        _exclusive_lock(folder),
    ):
        on_disk = _read_version(folder)
        if on_disk > _version_key(manifest["version"]):
            logger.info("kept the newer manifest in %s", root, extra={"run_id": run_id})
            return False
        summary = {key: manifest[key] for key in ("timestamp", "skipped_views", "skipped_count")}
        _write_json_atomic(folder, SKIP_SUMMARY_NAME, summary)
        if manifest.get("reconstruction_jobs"):
            _write_json_atomic(
                folder, RECONSTRUCTION_MANIFEST_NAME, reconstruction_manifest(manifest)
            )
        _write_json_atomic(folder, MANIFEST_NAME, manifest)
    logger.info("wrote manifest %s", root / MANIFEST_NAME, extra={"run_id": run_id})
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


def _read_version(folder: int) -> tuple[str, int]:
    try:
        with os.fdopen(open_in(folder, MANIFEST_NAME), "rb") as handle:
            document = json.loads(handle.read())
    except FileNotFoundError:
        return ("", -1)
    except (OSError, ValueError) as exc:  # damaged, or a link planted in its place: replaced
        logger.warning("replacing unreadable manifest %s: %s", MANIFEST_NAME, exc)
        return ("", -1)
    return _version_key(document.get("version") if isinstance(document, dict) else None)


@contextmanager
def _exclusive_lock(folder: int) -> Iterator[None]:
    """Hold an exclusive flock on the folder's lock file (created if missing) across processes."""
    # Opened for writing: on NFS, flock is emulated with POSIX locks, which need it.
    fd = open_in(folder, LOCK_NAME, os.O_RDWR | os.O_CREAT)
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


def _job_entry(
    job: RowMapping, attempts: list[dict[str, Any]], overlaps: ProbeOverlaps
) -> dict[str, Any]:
    status = JobStatus(job["status"]).value
    result = finite_tree(dict(job["result"] or {}))
    # The job's status is the authority; training's own word (e.g. "stopped") is kept aside.
    training_status = result.pop("status", None)
    if training_status not in (None, status):
        result["training_status"] = training_status
    metrics = result.get("metrics")
    # Phase D's measure of the job's own files: the view's splits, or a baseline's Phase C scan.
    probe_overlap, probe_overlap_reason = overlaps.for_job(
        job["train_data_path"], job["test_data_path"]
    )
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
            "loss": finite_tree(job["progress_loss"]),
        },
        timings={key: isoformat_z(job[key]) for key in ("created_at", "started_at", "finished_at")},
        metrics=metrics if isinstance(metrics, dict) else None,
        error=job["error"],
        probe_overlap=finite_tree(probe_overlap),  # a hand-edited file may hold NaN
        probe_overlap_reason=probe_overlap_reason,
    )
    return entry


def _reconstruction_entry(
    job: RowMapping,
    attempts: list[dict[str, Any]],
    overlaps: ProbeOverlaps,
    options: dict[str, Any],
) -> dict[str, Any]:
    """Phase F's job fields (dose, view, split, input_npz, output_dir, algorithm,
    num_epochs), then ours, as a training job's entry has them."""
    entry = _job_entry(job, attempts, overlaps)
    split = job["split"]
    phase_f = {
        "dose": entry["dose"],
        "view": job["view"],
        "split": split,
        "input_npz": job["train_data_path"] if split == "train" else job["test_data_path"],
        "output_dir": job["artifact_dir"],
        "algorithm": ALGORITHMS.get(job["engine"], job["engine"]),
        "num_epochs": options.get("epochs"),
    }
    ours = {k: v for k, v in entry.items() if k not in STUDY_JOB_KEYS and k not in phase_f}
    return {**phase_f, "engine": job["engine"], "log_path": job["log_path"], **ours}


def reconstruction_manifest(manifest: dict[str, Any]) -> dict[str, Any]:
    """Phase F's reconstruction_manifest.json: roots, filters, counts and its jobs."""
    jobs = manifest["reconstruction_jobs"]
    counts = Counter(job["status"] for job in jobs)
    return {
        "timestamp": manifest["timestamp"],
        "phase_c_root": manifest["phase_c_root"],
        "phase_d_root": manifest["phase_d_root"],
        "artifact_root": manifest["artifact_root"],
        "filters": manifest["filters"],
        "counts": {
            "total": len(jobs),
            **{status.value: counts.get(status.value, 0) for status in JobStatus},
        },
        "jobs": [
            {
                key: job[key]
                for key in (
                    "dose",
                    "view",
                    "split",
                    "input_npz",
                    "output_dir",
                    "algorithm",
                    "num_epochs",
                )
            }
            | {"status": job["status"], "metrics": job["metrics"]}
            for job in jobs
        ],
        "skipped_views": manifest["skipped_views"],
        "run_id": manifest["run_id"],
    }


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


def _write_json_atomic(folder: int, name: str, document: dict[str, Any]) -> None:
    """`document` as strict JSON, written atomically in the open `folder`."""
    text = json.dumps(document, indent=2, allow_nan=False) + "\n"
    write_atomic_in(folder, name, text.encode("utf-8"))


def refresh_manifest(*, session: Session, run_id: int, data_root: Path | None) -> None:
    """Rewrite the run's manifest after a committed change, then any other that is owed.

    A failed write is logged and recorded (`Run.manifest_stale`), never raised: the change
    stands, GET /manifests/{run} still answers, and the write is retried by the next change
    (of any run) and by every reaper sweep.
    """
    engine = session.get_bind()
    assert isinstance(engine, Engine)
    if session.in_transaction() and not (session.new or session.dirty or session.deleted):
        session.commit()  # only a read is open: end it before the file writes
    sync_manifest(engine, run_id, data_root)
    retry_stale_manifests(engine, data_root)


def sync_manifest(engine: Engine, run_id: int, data_root: Path | None) -> bool:
    """Write the run's manifest; record in the run whether a write is still owed."""
    try:
        with Session(read_engine(engine)) as session:
            run = session.get(Run, run_id)
            was_stale = run is not None and run.manifest_stale
            write_manifest(session=session, run_id=run_id, data_root=data_root)
    except OSError:
        logger.exception("could not write the manifest", extra={"run_id": run_id})
        _mark_stale(engine, run_id, stale=True)
        return False
    if was_stale:
        _mark_stale(engine, run_id, stale=False)
        logger.info("wrote the manifest that was owed", extra={"run_id": run_id})
    return True


def retry_stale_manifests(engine: Engine, data_root: Path | None) -> list[int]:
    """Write every manifest whose last write failed; the runs still owed one."""
    with Session(read_engine(engine)) as session:
        owed = list(session.exec(select(Run.id).where(col(Run.manifest_stale))))
    return [
        run_id
        for run_id in owed
        if run_id is not None and not sync_manifest(engine, run_id, data_root)
    ]


def _mark_stale(engine: Engine, run_id: int, *, stale: bool) -> None:
    try:
        with engine.begin() as connection:
            connection.execute(
                sa.update(Run).where(col(Run.id) == run_id).values(manifest_stale=stale)
            )
    except sa.exc.SQLAlchemyError:
        logger.warning(
            "could not record the manifest's state", exc_info=True, extra={"run_id": run_id}
        )
