"""Live progress: a run's live state, and the same as server-sent events."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import Engine

from app.api.deps import RunId
from app.core.db import read_engine
from app.events import read_live, run_events
from app.progress import RunLive

router = APIRouter(prefix="/runs", tags=["progress"])

PING_S = 15.0


def get_reader(request: Request) -> Engine:
    """The app's database for reads that must not hold SQLite's write lock (streams)."""
    return read_engine(request.app.state.engine)


# Not SessionDep: a stream lasts as long as the run, and a request's session (with its open
# transaction) would last as long as the stream.
ReaderDep = Annotated[Engine, Depends(get_reader)]


@router.get("/{run_id}/progress")
def read_run_progress(run_id: RunId, reader: ReaderDep) -> RunLive:
    """Read a run's live state: each job's epoch of total, loss, ETA and metrics."""
    return read_live(reader, run_id)[1]


@router.get(
    "/{run_id}/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "SSE stream"}},
)
def stream_run_events(
    run_id: RunId,
    request: Request,
    reader: ReaderDep,
    poll_s: Annotated[float, Query(ge=0.05, le=10.0, description="Database poll period")] = 0.5,
) -> StreamingResponse:
    """Follow a run as server-sent events: snapshot, job and run changes, then end."""
    start = read_live(reader, run_id)  # an unknown run is a 404 before the stream starts
    return StreamingResponse(
        run_events(
            reader, start, poll_s=poll_s, ping_s=PING_S, disconnected=request.is_disconnected
        ),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
