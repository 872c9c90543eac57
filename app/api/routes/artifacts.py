"""Job artifacts over HTTP: reconstruction PNG, result, metrics; and the loss history."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from fastapi import Path as PathParam
from fastapi.responses import StreamingResponse

from app.api.deps import JobId, ReadSessionDep, SettingsDep
from app.api.errors import error_responses
from app.artifacts import (
    ArtifactsPublic,
    JobHistory,
    list_artifacts,
    open_artifact,
    read_job_history,
)

router = APIRouter(prefix="/jobs", tags=["artifacts"])

ArtifactName = Annotated[str, PathParam(max_length=64, description="e.g. reconstruction.png")]


# 409: a stored path that now goes through a symlink (app.paths) is refused, not followed.
@router.get("/{job_id}/artifacts", responses=error_responses(409))
def read_job_artifacts(
    job_id: JobId, session: ReadSessionDep, settings: SettingsDep
) -> ArtifactsPublic:
    """List the artifacts the job has written so far, with their URLs."""
    return list_artifacts(session=session, job_id=job_id, data_root=settings.data_root)


@router.get(
    "/{job_id}/artifacts/{name}",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {
                "image/png": {},
                "application/json": {},
                "text/csv": {},
                "text/plain": {},
            }
        },
        **error_responses(409),
    },
)
def read_job_artifact(
    job_id: JobId, name: ArtifactName, session: ReadSessionDep, settings: SettingsDep
) -> StreamingResponse:
    """Download one artifact: reconstruction.png, result.json, metrics.csv or train.log."""
    artifact = open_artifact(
        session=session, job_id=job_id, name=name, data_root=settings.data_root
    )
    # Streamed from the file opened (confined) here: never reopened by its path.
    headers = {"Cache-Control": "no-cache", "Content-Length": str(artifact.size_bytes)}
    return StreamingResponse(artifact.chunks(), media_type=artifact.media_type, headers=headers)


@router.get("/{job_id}/history", responses=error_responses(409))
def read_job_history_route(
    job_id: JobId, session: ReadSessionDep, settings: SettingsDep
) -> JobHistory:
    """Read the job's per-epoch losses (latest attempt), for loss curves."""
    return read_job_history(session=session, job_id=job_id, data_root=settings.data_root)
