"""Jobs: read, follow the log, cancel, retry."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import PlainTextResponse

from app import crud, retry
from app.api.deps import ReadSessionDep, SessionDep
from app.models import JobPublic

router = APIRouter(prefix="/jobs", tags=["jobs"])

NEXT_OFFSET_HEADER = "X-Log-Next-Offset"
SIZE_HEADER = "X-Log-Size"


@router.get("/{job_id}")
def read_job(job_id: int, session: ReadSessionDep) -> JobPublic:
    """Read a job: status, attempts, progress, result, error and attempt history."""
    return crud.read_job(session=session, job_id=job_id)


@router.get("/{job_id}/log", response_class=PlainTextResponse)
def read_job_log(
    job_id: int, session: ReadSessionDep, offset: Annotated[int, Query(ge=0)] = 0
) -> PlainTextResponse:
    """Read the job's train.log from a byte offset; X-Log-Next-Offset says where to go on."""
    chunk = crud.read_job_log(session=session, job_id=job_id, offset=offset)
    headers = {NEXT_OFFSET_HEADER: str(chunk.next_offset), SIZE_HEADER: str(chunk.size)}
    return PlainTextResponse(chunk.text, headers=headers)


@router.post("/{job_id}/cancel")
def cancel_job(job_id: int, session: SessionDep) -> JobPublic:
    """Cancel a queued job now, or ask a running job to stop."""
    return crud.cancel_job(session=session, job_id=job_id)


@router.post("/{job_id}/retry")
def retry_job(job_id: int, session: SessionDep) -> JobPublic:
    """Requeue a failed or cancelled job with a fresh attempt budget."""
    return retry.retry_job(session=session, job_id=job_id)
