"""The API's router: every route module, mounted once."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.routes import health, jobs, manifests, runs

api_router = APIRouter()
api_router.include_router(runs.router)
api_router.include_router(jobs.router)
api_router.include_router(manifests.router)
api_router.include_router(health.router)
