"""Run submission (POST /runs): enumerate before any write lock, then store the run, its
jobs and skip events in one transaction, with the run's files written before the commit."""

from __future__ import annotations

import logging
import os
import shutil
from collections import Counter
from pathlib import Path
from typing import IO, Any

from sqlalchemy import insert
from sqlmodel import Session, col, select

from app import manifest
from app.core.config import Settings
from app.core.db import sqlite_path
from app.errors import RequestInvalid
from app.models import (
    LOCAL_CALLER,
    Job,
    JobStatus,
    Run,
    RunCreated,
    SkipEvent,
    SkipEventPublic,
    utcnow,
)
from app.options import RunCreate
from app.paths import (
    PathOutsideDataRoot,
    check_confined,
    find_symlink,
    open_dir,
    open_file,
    resolve_inside,
)
from app.public import job_public, run_public
from app.study.design import StudyDesign
from app.study.jobs import Enumeration, MissingDataError, enumerate_jobs, write_dry_run_logs

logger = logging.getLogger(__name__)

RUNS_DIR = "runs"  # <data_root>/runs/<id>: the default artifact folders
ABANDONED_DIR = ".abandoned"  # runs/.abandoned/<id>-<time>: what a dead submission left


def create_run(
    *, session: Session, body: RunCreate, settings: Settings, submitted_by: str = LOCAL_CALLER
) -> RunCreated:
    """Enumerate a run's jobs and skip events and store them in one transaction."""
    data_root = settings.data_root.resolve()
    c_root, d_root, a_root = _resolve_roots(body, data_root)
    design = body.design or StudyDesign()
    _check_design_size(body, design, settings.max_jobs_per_run)
    # The file system is checked before the write transaction opens: on SQLite that
    # transaction holds the database's write lock, and claims and heartbeats wait for it.
    # A run's default folder is named after its id, known only once it is inserted.
    enumeration = _enumerate(body, design, c_root, d_root, a_root or data_root / RUNS_DIR)
    _refuse_symlinks(enumeration, data_root)
    run = _new_run(body, design, c_root, d_root)
    run.submitted_by = submitted_by
    try:
        enumeration = _insert_run(session, run, a_root, settings, enumeration)
        jobs, skips = _store_enumeration(session, run, enumeration, settings.max_attempts)
        # Before commit: a run whose files cannot be written is refused, never stored.
        _write_run_files(Path(run.artifact_root), enumeration, data_root, dry_run=body.dry_run)
        session.commit()
    except BaseException:
        session.rollback()
        raise
    assert run.id is not None
    logger.info("created run with %d jobs", len(jobs), extra={"run_id": run.id})
    manifest.refresh_manifest(session=session, run_id=run.id, data_root=data_root)
    session.commit()  # end the manifest's read transaction: on SQLite it holds the lock
    public = run_public(run, Counter(job.status for job in jobs), len(skips))
    return RunCreated(
        **public.model_dump(),
        jobs=[job_public(job, []) for job in jobs],
        skipped_views=[SkipEventPublic.model_validate(skip) for skip in skips],
    )


def _resolve_roots(body: RunCreate, data_root: Path) -> tuple[Path, Path, Path | None]:
    c_root = resolve_inside(body.phase_c_root, field="phase_c_root", data_root=data_root)
    d_root = resolve_inside(body.phase_d_root, field="phase_d_root", data_root=data_root)
    if body.artifact_root is None:
        return c_root, d_root, None
    a_root = resolve_inside(body.artifact_root, field="artifact_root", data_root=data_root)
    return c_root, d_root, a_root


def _enumerate(
    body: RunCreate, design: StudyDesign, c_root: Path, d_root: Path, artifact_root: Path
) -> Enumeration:
    try:
        return enumerate_jobs(
            design=design,
            phase_c_root=c_root,
            phase_d_root=d_root,
            artifact_root=artifact_root,
            filters=body.filters,
            strict=body.strict,
            reconstruction=body.reconstruction,
        )
    except MissingDataError as exc:
        raise RequestInvalid(_missing_errors(exc.missing, c_root)) from exc


def _insert_run(
    session: Session, run: Run, a_root: Path | None, settings: Settings, enumeration: Enumeration
) -> Enumeration:
    """Insert the run, settle its artifact root, and place the jobs' folders under it."""
    session.add(run)
    session.flush()  # the run id names the default artifact folder
    assert run.id is not None
    data_root = settings.data_root.resolve()
    artifact_root = a_root or data_root / RUNS_DIR / str(run.id)
    # Checked inside the write transaction, so two submissions cannot both claim a folder.
    conflict = _artifact_root_conflict(session, run, artifact_root, settings, a_root is not None)
    if conflict is not None:
        msg = f"{str(artifact_root)!r} {conflict}"
        loc = ["body", "artifact_root"]
        raise RequestInvalid([{"loc": loc, "msg": msg, "type": "artifact_root_conflict"}])
    _claim_unowned_folder(artifact_root, data_root, chosen=a_root is not None, run_id=run.id)
    run.artifact_root = str(artifact_root)
    return enumeration.placed_under(artifact_root)


def _artifact_root_conflict(
    session: Session, run: Run, artifact_root: Path, settings: Settings, chosen: bool
) -> str | None:
    """Why `artifact_root` may not hold this run's files, or None when it may."""
    # A run's folder must not hold another run's files, nor be held by another run's folder:
    # manifests, logs and a retry's clean-up would touch the other run's files. Nor may it
    # overlap the study's inputs, which a run only reads.
    data_root = settings.data_root.resolve()
    if artifact_root == data_root:
        return "is the data root"
    for field, root in (("phase_c_root", run.phase_c_root), ("phase_d_root", run.phase_d_root)):
        if _overlap(artifact_root, Path(root)):
            return f"overlaps the study input {field} ({root}), which runs only read"
    database = sqlite_path(settings.resolved_database_url)
    if database is not None and _overlap(artifact_root, database):
        return f"overlaps the database file ({database})"
    others = select(Run.id, Run.artifact_root).where(Run.id != run.id).order_by(col(Run.id))
    for other_id, other_root in session.exec(others):
        if _overlap(artifact_root, Path(other_root)):
            return f"overlaps the artifact root of run {other_id} ({other_root})"
    runs = data_root / RUNS_DIR
    if chosen and _overlap(artifact_root, runs):
        return f"overlaps {runs}, which holds the default artifact folders (runs/<id>)"
    return None


def _claim_unowned_folder(
    artifact_root: Path, data_root: Path, *, chosen: bool, run_id: int
) -> None:
    """A run's folder starts empty: files no run owns are refused, or set aside.

    No other run's folder overlaps this one (checked first), so any file in it is no run's:
    in a chosen folder the submission is refused; in a default folder, runs/<id>, they are
    what a submission that died before it committed left (its id was never stored, so it
    comes round again), and are moved to runs/.abandoned/<id>-<time>, never mixed in.
    """
    try:
        fd = open_dir(artifact_root, root=data_root)
    except (FileNotFoundError, NotADirectoryError):
        return
    try:
        leftovers = sorted(os.listdir(fd))
    finally:
        os.close(fd)
    if not leftovers:
        return
    if chosen:
        shown = ", ".join(leftovers[:5]) + (", …" if len(leftovers) > 5 else "")
        msg = (
            f"{str(artifact_root)!r} already holds files that no run owns ({shown}): "
            "choose an empty or new folder"
        )
        raise RequestInvalid.at(["body", "artifact_root"], msg, "artifact_root_not_empty")
    aside_dir = data_root / RUNS_DIR / ABANDONED_DIR
    stamp = utcnow().strftime("%Y%m%dT%H%M%S%fZ")
    runs_fd = open_dir(data_root / RUNS_DIR, root=data_root)
    aside_fd = open_dir(aside_dir, root=data_root, create=True)
    try:
        os.rename(artifact_root.name, f"{run_id}-{stamp}", src_dir_fd=runs_fd, dst_dir_fd=aside_fd)
    finally:
        os.close(runs_fd)
        os.close(aside_fd)
    logger.warning(
        "run %d: %s held files no run owns (%d entries); moved to %s",
        run_id, artifact_root, len(leftovers), aside_dir / f"{run_id}-{stamp}",
    )  # fmt: skip


def _overlap(a: Path, b: Path) -> bool:
    return a.is_relative_to(b) or b.is_relative_to(a)


def _refuse_symlinks(enumeration: Enumeration, data_root: Path) -> None:
    """Refuse a run whose data or artifact folders go through a symlink below the root.

    The roots were resolved; the folders and files found under them were not. Checked
    again, race-free, whenever they are opened.
    """
    seen: set[Path] = set()
    for spec in enumeration.jobs:
        data_field = "phase_c_root" if spec.view == "baseline" else "phase_d_root"
        for field, path in (
            (data_field, spec.train_data_path),
            (data_field, spec.test_data_path),
            ("artifact_root", spec.artifact_dir),
        ):
            link = find_symlink(path, root=data_root, seen=seen)
            if link is not None:
                why = f"{str(path)!r} goes through the symlink {str(link)!r}; links are refused"
                raise PathOutsideDataRoot(field, str(path), data_root, why)


def _write_run_files(
    artifact_root: Path, enumeration: Enumeration, data_root: Path, *, dry_run: bool
) -> None:
    """Create the run's folder and, for a dry run, each job's train.log line."""
    created = False
    try:
        check_confined(artifact_root, root=data_root)
        created = not artifact_root.exists()
        os.close(open_dir(artifact_root, root=data_root, create=True))
        if dry_run:
            write_dry_run_logs(enumeration.jobs, opener=lambda path: _open_log(path, data_root))
    except OSError as exc:
        if created:  # the run is refused; a later run may get the same id, so the same folder
            shutil.rmtree(artifact_root, ignore_errors=True)
        why = exc.strerror or str(exc)
        msg = f"{str(artifact_root)!r} could not be written: {why}"
        raise RequestInvalid.at(["body", "artifact_root"], msg, "artifact_root_unwritable") from exc


def _open_log(path: Path, data_root: Path) -> IO[str]:
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
    fd = open_file(path, root=data_root, flags=flags, create_dirs=True)
    return os.fdopen(fd, "a", encoding="utf-8")


def _new_run(body: RunCreate, design: StudyDesign, c_root: Path, d_root: Path) -> Run:
    return Run(
        phase_c_root=str(c_root),
        phase_d_root=str(d_root),
        artifact_root="",  # set once the run has an id
        strict=body.strict,
        dry_run=body.dry_run,
        filters=body.filters.model_dump(mode="json"),
        design=design.model_dump(mode="json"),
        training=body.training.model_dump(mode="json"),
        execution=body.execution.model_dump(mode="json"),
        reconstruction=(
            None if body.reconstruction is None else body.reconstruction.model_dump(mode="json")
        ),
    )


def _check_design_size(body: RunCreate, design: StudyDesign, max_jobs: int) -> None:
    doses = [d for d in design.doses if body.filters.selects_dose(d)]
    views = [v for v in design.views if body.filters.selects_view(v)]
    if not doses or not views:
        msg = (
            f"the filters select nothing from the design "
            f"(doses {design.doses}, views {list(design.views)})"
        )
        raise RequestInvalid([{"loc": ["body", "filters"], "msg": msg, "type": "value_error"}])
    per_view = 1 if body.filters.selects_kind("train") else 0
    if body.reconstruction is not None and body.filters.selects_kind("reconstruct"):
        splits = [s for s in body.reconstruction.splits if body.filters.selects_split(s)]
        per_view += len(body.reconstruction.engines) * len(splits)
    if per_view == 0:
        msg = (
            "the filters select reconstructions but the run asks for none"
            if body.filters.kind == "reconstruct"
            else "the filters select no split of the run's reconstructions"
        )
        raise RequestInvalid([{"loc": ["body", "filters"], "msg": msg, "type": "value_error"}])
    count = len(doses) * len(views) * per_view
    if count > max_jobs:
        msg = f"{count} jobs exceed the limit of {max_jobs} per run"
        loc = ["body", "design", "doses"]
        raise RequestInvalid([{"loc": loc, "msg": msg, "type": "value_error"}])


def _missing_errors(missing: list[Path], c_root: Path) -> list[dict[str, Any]]:
    errors = []
    for path in missing:
        is_c = path.is_relative_to(c_root) and path.name.startswith("patched_")
        field = "phase_c_root" if is_c else "phase_d_root"
        errors.append(
            {"loc": ["body", field], "msg": f"file not found: {path}", "type": "missing_file"}
        )
    return errors


def _store_enumeration(
    session: Session, run: Run, enumeration: Enumeration, max_attempts: int
) -> tuple[list[Job], list[SkipEvent]]:
    # A core bulk INSERT: building thousands of validated ORM objects costs far more.
    assert run.id is not None
    now = utcnow()
    status = JobStatus.dry_run if run.dry_run else JobStatus.queued
    defaults: dict[str, Any] = {"run_id": run.id, "status": status, "max_attempts": max_attempts}
    defaults |= {"attempts": 0, "failures": 0, "cancel_requested": False}
    defaults |= {"created_at": now, "updated_at": now}
    rows = [
        {**defaults, "position": i, **spec.to_record()} for i, spec in enumerate(enumeration.jobs)
    ]
    if rows:
        session.execute(insert(Job), rows)
    skips = [SkipEvent(run_id=run.id, **s.to_record()) for s in enumeration.skips]
    session.add_all(skips)
    session.flush()
    query = select(Job).where(Job.run_id == run.id).order_by(col(Job.position))
    return list(session.exec(query)), skips
