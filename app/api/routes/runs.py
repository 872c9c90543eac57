"""Runs: submit, list, read, cancel and retry."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from app import crud, submission
from app.api.deps import MAX_ID, CallerDep, ReadSessionDep, RunId, SessionDep, SettingsDep
from app.api.errors import error_responses
from app.models import JobsPublic, RunCreated, RunPublic, RunsPublic, RunStatus, SkipEventsPublic
from app.options import RunCreate

router = APIRouter(prefix="/runs", tags=["runs"])


@router.post("", status_code=status.HTTP_201_CREATED, responses=error_responses(413))
def create_run(
    body: RunCreate, session: SessionDep, settings: SettingsDep, caller: CallerDep
) -> RunCreated:
    """Enumerate a study run's jobs and skip events, and enqueue the jobs."""
    return submission.create_run(session=session, body=body, settings=settings, submitted_by=caller)


@router.get("")
def list_runs(
    session: ReadSessionDep,
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    status: RunStatus | None = None,
) -> RunsPublic:
    """List runs, newest first, optionally only those with the given status."""
    return crud.list_runs(session=session, offset=offset, limit=limit, status=status)


@router.get("/{run_id}")
def read_run(run_id: RunId, session: ReadSessionDep) -> RunPublic:
    """Read a run with its status and job counts."""
    return crud.read_run(session=session, run_id=run_id)


@router.get("/{run_id}/jobs")
def read_run_jobs(run_id: RunId, session: ReadSessionDep) -> JobsPublic:
    """List a run's jobs in study order."""
    return crud.read_run_jobs(session=session, run_id=run_id)


@router.get("/{run_id}/skips")
def read_run_skips(run_id: RunId, session: ReadSessionDep) -> SkipEventsPublic:
    """List a run's skip events (views left out because their data is missing)."""
    return crud.read_run_skips(session=session, run_id=run_id)


@router.post("/{run_id}/cancel")
def cancel_run(run_id: RunId, session: SessionDep, settings: SettingsDep) -> RunPublic:
    """Cancel a run's queued jobs and ask its running jobs to stop."""
    return crud.cancel_run(session=session, run_id=run_id, data_root=settings.data_root)


@router.post("/{run_id}/retry")
def retry_run(run_id: RunId, session: SessionDep, settings: SettingsDep) -> RunPublic:
    """Requeue a run's failed and cancelled jobs."""
    return crud.retry_run(session=session, run_id=run_id, data_root=settings.data_root)
