"""Health: the service and its database answer; which workers hold jobs."""

from __future__ import annotations

from importlib.metadata import version

from fastapi import APIRouter

from app.api.deps import ReadSessionDep
from app.liveness import HealthLive, check_health_live

router = APIRouter(tags=["health"])


@router.get("/health")
def health(session: ReadSessionDep) -> HealthLive:
    """Report that the API and its database are up, and the live workers' last heartbeats."""
    return check_health_live(session=session, version=version("ptychojobs"))
