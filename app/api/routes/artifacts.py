"""Job artifacts over HTTP: reconstruction PNG, result, metrics; and the loss history."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import FileResponse

from app.api.deps import ReadSessionDep
from app.artifacts import (
    ArtifactsPublic,
    JobHistory,
    find_artifact,
    list_artifacts,
    read_job_history,
)

router = APIRouter(prefix="/jobs", tags=["artifacts"])


@router.get("/{job_id}/artifacts")
def read_job_artifacts(job_id: int, session: ReadSessionDep) -> ArtifactsPublic:
    """List the artifacts the job has written so far, with their URLs."""
    return list_artifacts(session=session, job_id=job_id)


@router.get(
    "/{job_id}/artifacts/{name}",
    response_class=FileResponse,
    responses={200: {"content": {"image/png": {}, "application/json": {}, "text/csv": {}}}},
)
def read_job_artifact(job_id: int, name: str, session: ReadSessionDep) -> FileResponse:
    """Download one artifact: reconstruction.png, result.json, metrics.csv or train.log."""
    artifact = find_artifact(session=session, job_id=job_id, name=name)
    return FileResponse(
        artifact.path, media_type=artifact.media_type, headers={"Cache-Control": "no-cache"}
    )


@router.get("/{job_id}/history")
def read_job_history_route(job_id: int, session: ReadSessionDep) -> JobHistory:
    """Read the job's per-epoch losses (latest attempt), for loss curves."""
    return read_job_history(session=session, job_id=job_id)
