"""The API's router: every route module, mounted once."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.routes import (
    artifacts,
    dashboard,
    docs,
    events,
    health,
    jobs,
    manifests,
    metrics,
    report,
    runs,
)

api_router = APIRouter()
api_router.include_router(runs.router)
api_router.include_router(events.router)
api_router.include_router(report.router)
api_router.include_router(jobs.router)
api_router.include_router(artifacts.router)
api_router.include_router(manifests.router)
api_router.include_router(health.router)
api_router.include_router(metrics.router)
api_router.include_router(dashboard.router)
api_router.include_router(docs.router)
