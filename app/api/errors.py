"""The one place where domain errors become HTTP answers."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse

from app import manifest, queue
from app.crud import NotFound, RequestInvalid
from app.paths import PathOutsideDataRoot


def _detail(code: int, errors: list[dict[str, Any]]) -> JSONResponse:
    return JSONResponse(status_code=code, content={"detail": errors})


async def _not_found(_: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(status_code=status.HTTP_404_NOT_FOUND, content={"detail": str(exc)})


async def _request_invalid(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestInvalid)
    return _detail(status.HTTP_422_UNPROCESSABLE_CONTENT, exc.errors)


async def _outside_data_root(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, PathOutsideDataRoot)
    error = {"loc": ["body", exc.field], "msg": str(exc), "type": "path_outside_data_root"}
    return _detail(status.HTTP_422_UNPROCESSABLE_CONTENT, [error])


async def _invalid_transition(_: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(status_code=status.HTTP_409_CONFLICT, content={"detail": str(exc)})


def install_error_handlers(app: FastAPI) -> None:
    """Map NotFound and queue.JobNotFound → 404, bad input → 422, bad transitions → 409."""
    app.add_exception_handler(NotFound, _not_found)
    app.add_exception_handler(queue.JobNotFound, _not_found)
    app.add_exception_handler(queue.RunNotFound, _not_found)
    app.add_exception_handler(manifest.RunNotFound, _not_found)
    app.add_exception_handler(RequestInvalid, _request_invalid)
    app.add_exception_handler(PathOutsideDataRoot, _outside_data_root)
    app.add_exception_handler(queue.InvalidTransition, _invalid_transition)
