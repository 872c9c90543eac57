"""The FastAPI application: `create_app()` migrates the database and sweeps expired leases."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version
from pathlib import Path

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.middleware.trustedhost import TrustedHostMiddleware
from sqlalchemy import Engine

from app import manifest, queue
from app.api.errors import install_error_handlers
from app.api.limits import BodySizeLimit
from app.api.main import api_router
from app.core.config import Settings, get_settings
from app.core.db import make_engine
from app.migrate import upgrade_head

logger = logging.getLogger(__name__)


def reap_once(engine: Engine, data_root: Path | None = None) -> None:
    """Requeue (or fail) jobs whose lease expired; rewrite their manifests and any owed."""
    for run_id in queue.requeue_expired(engine=engine):
        manifest.sync_manifest(engine, run_id, data_root)
    manifest.retry_stale_manifests(engine, data_root)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app on `settings` (default: the environment's)."""
    settings = settings or get_settings()
    engine = make_engine(
        settings.resolved_database_url, busy_timeout_ms=settings.sqlite_busy_timeout_ms
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        upgrade_head(engine)
        reap_once(engine, settings.data_root)
        yield
        engine.dispose()

    app = FastAPI(
        title="ptychojobs",
        summary="Submit ptychography training studies; follow their jobs; read manifests.",
        version=version("ptychojobs"),
        lifespan=lifespan,
        docs_url=None,  # served by app.api.routes.docs from packaged assets: no CDN
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.engine = engine
    install_error_handlers(app)
    install_middleware(app, settings)
    app.include_router(api_router)
    return app


def install_middleware(app: FastAPI, settings: Settings) -> None:
    """Host check (DNS rebinding), request body size, and CORS only where configured."""
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    # Added last, so it runs first: a request for a host we do not serve goes no further.
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=settings.allowed_hosts)
