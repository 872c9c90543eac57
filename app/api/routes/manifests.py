"""Manifests: the study's training manifest of a run, built from the database."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from app import crud
from app.api.deps import RunId, heavy_read

router = APIRouter(prefix="/manifests", tags=["manifests"])


@router.get("/{run_id}")
async def read_manifest(run_id: RunId, request: Request) -> dict[str, Any]:
    """Read a run's training manifest (study.md §7 plus per-job status and results)."""
    return await heavy_read(
        request, lambda session: crud.read_manifest(session=session, run_id=run_id)
    )
