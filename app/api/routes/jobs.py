"""Jobs: read, follow the log, cancel, retry."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import PlainTextResponse

from app import crud, retry
from app.api.deps import MAX_ID, JobId, ReadSessionDep, SessionDep, SettingsDep
from app.api.errors import error_responses
from app.models import JobPublic

router = APIRouter(prefix="/jobs", tags=["jobs"])

NEXT_OFFSET_HEADER = "X-Log-Next-Offset"
SIZE_HEADER = "X-Log-Size"


@router.get("/{job_id}")
def read_job(job_id: JobId, session: ReadSessionDep) -> JobPublic:
    """Read a job: status, attempts, progress, result, error and attempt history."""
    return crud.read_job(session=session, job_id=job_id)


@router.get("/{job_id}/log", response_class=PlainTextResponse, responses=error_responses(409))
def read_job_log(
    job_id: JobId,
    session: ReadSessionDep,
    settings: SettingsDep,
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
) -> PlainTextResponse:
    """Read the job's train.log from a byte offset; X-Log-Next-Offset says where to go on."""
    data_root = settings.data_root
    chunk = crud.read_job_log(session=session, job_id=job_id, offset=offset, data_root=data_root)
    headers = {NEXT_OFFSET_HEADER: str(chunk.next_offset), SIZE_HEADER: str(chunk.size)}
    return PlainTextResponse(chunk.text, headers=headers)


@router.post("/{job_id}/cancel", responses=error_responses(409))
def cancel_job(job_id: JobId, session: SessionDep, settings: SettingsDep) -> JobPublic:
    """Cancel a queued job now, or ask a running job to stop."""
    return crud.cancel_job(session=session, job_id=job_id, data_root=settings.data_root)


@router.post("/{job_id}/retry", responses=error_responses(409))
def retry_job(job_id: JobId, session: SessionDep, settings: SettingsDep) -> JobPublic:
    """Requeue a failed or cancelled job with a fresh attempt budget."""
    return retry.retry_job(session=session, job_id=job_id, data_root=settings.data_root)
