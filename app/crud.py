"""Database functions behind the API: create and read runs, jobs, skip events and logs."""

from __future__ import annotations

import logging
import os
from collections import Counter
from pathlib import Path
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from app import manifest, queue
from app.errors import NotFound
from app.models import (
    HealthPublic,
    Job,
    JobPublic,
    JobsPublic,
    JobStatus,
    LogChunk,
    Run,
    RunPublic,
    RunsPublic,
    RunStatus,
    SkipEvent,
    SkipEventPublic,
    SkipEventsPublic,
)
from app.paths import (
    open_file,
)
from app.public import derive_status, jobs_public, run_public

logger = logging.getLogger(__name__)

LOG_CHUNK_BYTES = 1 << 20


def list_runs(
    *, session: Session, offset: int, limit: int, status: RunStatus | None = None
) -> RunsPublic:
    """A page of runs, newest first, optionally only those with a given derived status."""
    counts = _status_counts(session, None)
    run_ids = [i for i in session.exec(select(Run.id).order_by(col(Run.id).desc())) if i]
    if status is not None:
        run_ids = [i for i in run_ids if derive_status(counts.get(i, Counter())) == status]
    page_ids = run_ids[offset : offset + limit]
    runs = {r.id: r for r in session.exec(select(Run).where(col(Run.id).in_(page_ids)))}
    skips = _skip_counts(session, page_ids)
    data = [run_public(runs[i], counts.get(i, Counter()), skips.get(i, 0)) for i in page_ids]
    return RunsPublic(data=data, count=len(run_ids), offset=offset, limit=limit)


def read_run(*, session: Session, run_id: int) -> RunPublic:
    """One run with its derived status and job counts."""
    run = _get_run(session, run_id)
    counts = _status_counts(session, run_id).get(run_id, Counter())
    return run_public(run, counts, _skip_counts(session, [run_id]).get(run_id, 0))


def read_run_jobs(*, session: Session, run_id: int) -> JobsPublic:
    """The run's jobs in enumeration order."""
    _get_run(session, run_id)
    query = select(Job).where(Job.run_id == run_id).order_by(col(Job.position))
    jobs = list(session.exec(query))
    return JobsPublic(data=jobs_public(session, jobs), count=len(jobs))


def read_run_skips(*, session: Session, run_id: int) -> SkipEventsPublic:
    """The run's skip events."""
    _get_run(session, run_id)
    query = select(SkipEvent).where(SkipEvent.run_id == run_id).order_by(col(SkipEvent.id))
    skips = [SkipEventPublic.model_validate(s) for s in session.exec(query)]
    return SkipEventsPublic(data=skips, count=len(skips))


def read_job(*, session: Session, job_id: int) -> JobPublic:
    """One job with its progress, result and attempt history."""
    return jobs_public(session, [_get_job(session, job_id)])[0]


def read_job_log(*, session: Session, job_id: int, offset: int, data_root: Path) -> LogChunk:
    """The job's train.log from byte `offset`, at most one chunk, ending on a whole line.

    The log is opened confined to the data root: a log path that goes through a symlink
    is refused (PathRefused), never followed.
    """
    job = _get_job(session, job_id)
    try:
        fd = open_file(Path(job.log_path), root=data_root)
    except (FileNotFoundError, NotADirectoryError):
        return LogChunk(text="", offset=offset, next_offset=offset, size=0)
    with os.fdopen(fd, "rb") as log:
        size = log.seek(0, 2)
        start = min(offset, size)
        log.seek(start)
        data = log.read(LOG_CHUNK_BYTES)
    if start + len(data) < size and b"\n" in data:
        data = data[: data.rindex(b"\n") + 1]  # never split a line (or a UTF-8 character)
    text = data.decode("utf-8", errors="replace")
    return LogChunk(text=text, offset=start, next_offset=start + len(data), size=size)


def read_manifest(*, session: Session, run_id: int) -> dict[str, Any]:
    """The run's manifest (study.md §7), built from the database."""
    _get_run(session, run_id)
    return manifest.build_manifest(session=session, run_id=run_id)


def cancel_run(*, session: Session, run_id: int, data_root: Path | None = None) -> RunPublic:
    """Cancel every queued job of a run now and ask its running jobs to stop."""
    _get_run(session, run_id)
    queue.cancel_run(session=session, run_id=run_id)
    return _after_control(session, run_id, data_root)


def retry_run(*, session: Session, run_id: int, data_root: Path | None = None) -> RunPublic:
    """Requeue the run's failed and cancelled jobs with a fresh attempt budget."""
    _get_run(session, run_id)
    queue.retry_run(session=session, run_id=run_id)
    return _after_control(session, run_id, data_root)


def cancel_job(*, session: Session, job_id: int, data_root: Path | None = None) -> JobPublic:
    """Cancel a queued job now, or ask a running job to stop."""
    job = queue.cancel_job(session=session, job_id=job_id)
    run_id = job.run_id
    session.commit()
    manifest.refresh_manifest(session=session, run_id=run_id, data_root=data_root)
    return read_job(session=session, job_id=job_id)


def _after_control(session: Session, run_id: int, data_root: Path | None) -> RunPublic:
    session.commit()
    manifest.refresh_manifest(session=session, run_id=run_id, data_root=data_root)
    return read_run(session=session, run_id=run_id)


def check_health(*, session: Session, version: str) -> HealthPublic:
    """Answer when the database answers."""
    session.exec(select(func.count()).select_from(Run)).one()
    return HealthPublic(database="ok", version=version)


def _get_run(session: Session, run_id: int) -> Run:
    run = session.get(Run, run_id)
    if run is None:
        raise NotFound("run", run_id)
    return run


def _get_job(session: Session, job_id: int) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        raise NotFound("job", job_id)
    return job


def _status_counts(session: Session, run_id: int | None) -> dict[int, Counter[JobStatus]]:
    query = select(Job.run_id, Job.status, func.count()).group_by(col(Job.run_id), col(Job.status))
    if run_id is not None:
        query = query.where(Job.run_id == run_id)
    counts: dict[int, Counter[JobStatus]] = {}
    for rid, status, n in session.exec(query):
        counts.setdefault(rid, Counter())[JobStatus(status)] = n
    return counts


def _skip_counts(session: Session, run_ids: list[int]) -> dict[int, int]:
    query = (
        select(SkipEvent.run_id, func.count())
        .where(col(SkipEvent.run_id).in_(run_ids))
        .group_by(col(SkipEvent.run_id))
    )
    return dict(session.exec(query).all())
