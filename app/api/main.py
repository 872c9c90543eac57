"""The API's router: every route module, mounted once, and who may call it.

Every router but health and the API docs requires an API token (when the settings say
tokens are required: `app.api.deps.require_token`), and lists the error answers it gives.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends

from app.api.deps import require_token
from app.api.errors import error_responses
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

_TOKEN = [Depends(require_token)]

api_router = APIRouter()
for guarded in (runs, events, report, jobs, artifacts, manifests):
    api_router.include_router(
        guarded.router, dependencies=_TOKEN, responses=error_responses(401, 404)
    )
api_router.include_router(health.router)
api_router.include_router(metrics.router, dependencies=_TOKEN, responses=error_responses(401))
api_router.include_router(dashboard.router, dependencies=_TOKEN)
api_router.include_router(docs.router)
