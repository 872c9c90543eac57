"""Health: the service and its database answer."""

from __future__ import annotations

from importlib.metadata import version

from fastapi import APIRouter

from app import crud
from app.api.deps import ReadSessionDep
from app.models import HealthPublic

router = APIRouter(tags=["health"])


@router.get("/health")
def health(session: ReadSessionDep) -> HealthPublic:
    """Report that the API and its database are up."""
    return crud.check_health(session=session, version=version("ptychojobs"))
