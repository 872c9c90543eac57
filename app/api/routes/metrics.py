"""Prometheus metrics of the queue: jobs by status, queue depth, latencies, durations."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from app.api.deps import ReadSessionDep
from app.prometheus import render_metrics

router = APIRouter(tags=["health"])


@router.get(
    "/metrics", response_class=Response, responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}}
)
def read_metrics(session: ReadSessionDep) -> Response:
    """Prometheus text format: jobs, runs, queue depth, live workers, latencies, durations."""
    return Response(render_metrics(session=session), media_type=CONTENT_TYPE_LATEST)
