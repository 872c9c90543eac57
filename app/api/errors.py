"""The one place where errors become HTTP answers.

The domain's family (`app.errors`): NotFound → 404, RequestInvalid → 422, Conflict → 409,
PathRefused → 409 (a stored path that now leads through a symlink), Unauthorized → 401.
Validation errors keep FastAPI's shape but never echo more than a little of the input, and
are strict JSON whatever came in (NaN, lone surrogates, huge numbers). Anything else is a
500 whose body says only that: no traceback, no server path.
"""

from __future__ import annotations

import logging
import math
import re
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.api.deps import TOKEN_COOKIE, TokenInUrl
from app.errors import Conflict, NotFound, PathRefused, RequestInvalid, Unauthorized

logger = logging.getLogger(__name__)

MAX_TEXT_CHARS = 200  # of an echoed input or a location
MAX_MSG_CHARS = 1000
MAX_ITEMS = 20  # of an echoed list or mapping
MAX_DEPTH = 4
MAX_ERRORS = 50


class ErrorPublic(BaseModel):
    """An error answer: what went wrong, in words."""

    detail: str


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for these error codes (422 keeps FastAPI's validation schema)."""
    words = {
        401: "Missing, unknown or revoked API token",
        404: "No such run, job or artifact",
        409: "The current state does not allow it",
        413: "Request body too large",
    }
    # Spelled out, not `model=`: FastAPI would document a model under the route's own media
    # type (text/plain, image/png), but error answers are JSON whatever the route serves.
    content = {"application/json": {"schema": ErrorPublic.model_json_schema()}}
    return {code: {"description": words[code], "content": content} for code in codes}


def json_safe(value: Any, depth: int = 0) -> Any:
    """A short, strict-JSON rendering of anything a client sent."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**63 else f"<integer of {value.bit_length()} bits>"
    if isinstance(value, str | bytes):
        return _short_text(value, MAX_TEXT_CHARS)
    if depth >= MAX_DEPTH:
        return f"<{type(value).__name__}>"
    if isinstance(value, dict):
        items = list(value.items())[:MAX_ITEMS]
        return {_short_text(str(k), MAX_TEXT_CHARS): json_safe(v, depth + 1) for k, v in items}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_safe(item, depth + 1) for item in list(value)[:MAX_ITEMS]]
    return _short_text(str(value), MAX_TEXT_CHARS)


def _short_text(text: str | bytes, limit: int) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    short = text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"
    # Lone surrogates cannot be encoded as UTF-8: show them escaped.
    return short.encode("utf-8", errors="backslashreplace").decode("utf-8")


def _validation_error(error: dict[str, Any]) -> dict[str, Any]:
    safe: dict[str, Any] = {
        "loc": [json_safe(part) for part in error.get("loc", ())][:MAX_ITEMS],
        "msg": _short_text(str(error.get("msg", "")), MAX_MSG_CHARS),
        "type": _short_text(str(error.get("type", "")), MAX_TEXT_CHARS),
    }
    if "input" in error:
        safe["input"] = json_safe(error["input"])
    if isinstance(error.get("ctx"), dict):
        safe["ctx"] = json_safe(error["ctx"])
    return safe


def _detail(code: int, detail: Any, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(status_code=code, content={"detail": detail}, headers=headers)


async def _not_found(_: Request, exc: Exception) -> JSONResponse:
    return _detail(status.HTTP_404_NOT_FOUND, str(exc))


async def _request_invalid(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestInvalid)
    errors = [_validation_error(error) for error in exc.errors[:MAX_ERRORS]]
    return _detail(status.HTTP_422_UNPROCESSABLE_CONTENT, errors)


async def _validation_failed(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [_validation_error(dict(error)) for error in list(exc.errors())[:MAX_ERRORS]]
    return _detail(status.HTTP_422_UNPROCESSABLE_CONTENT, errors)


# What FastAPI answers (400) when a body's bytes do not even decode.
_UNPARSED_BODY = "There was an error parsing the body"


async def _http_error(request: Request, exc: Exception) -> Response:
    """FastAPI's own answer, but an undecodable body is a 422 on the body like bad JSON, and
    a 405's `Allow` lists every method of the path (Starlette names one route's only)."""
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == status.HTTP_400_BAD_REQUEST and exc.detail == _UNPARSED_BODY:
        error = {"loc": ["body"], "msg": "the body is not UTF-8 JSON", "type": "json_invalid"}
        return _detail(status.HTTP_422_UNPROCESSABLE_CONTENT, [error])
    if exc.status_code == status.HTTP_405_METHOD_NOT_ALLOWED:
        allowed = _methods_of_path(request)
        if allowed:
            headers = {**(exc.headers or {}), "Allow": ", ".join(allowed)}
            exc = StarletteHTTPException(exc.status_code, exc.detail, headers=headers)
    return await http_exception_handler(request, exc)


def _methods_of_path(request: Request) -> list[str]:
    """Every method the API documents for the request's path (its OpenAPI paths)."""
    table: list[tuple[re.Pattern[str], list[str]]] | None = getattr(
        request.app.state, "methods_by_path", None
    )
    if table is None:
        table = request.app.state.methods_by_path = [
            (_template(path), sorted(method.upper() for method in operations))
            for path, operations in request.app.openapi().get("paths", {}).items()
        ]
    path = request.url.path
    return sorted(
        {method for pattern, methods in table if pattern.match(path) for method in methods}
    )


def _template(path: str) -> re.Pattern[str]:
    """An OpenAPI path template (`/jobs/{job_id}`) as a pattern over request paths."""
    parts = re.split(r"(\{[^}]+\})", path)
    body = "".join("[^/]+" if part.startswith("{") else re.escape(part) for part in parts)
    return re.compile(f"^{body}$")


async def _conflict(_: Request, exc: Exception) -> JSONResponse:
    return _detail(status.HTTP_409_CONFLICT, str(exc))


async def _unauthorized(_: Request, exc: Exception) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"}
    return _detail(status.HTTP_401_UNAUTHORIZED, str(exc), headers)


async def _token_to_cookie(request: Request, exc: Exception) -> RedirectResponse:
    # A dashboard link with ?token=: keep the token in a cookie, out of history and referrers.
    assert isinstance(exc, TokenInUrl)
    response = RedirectResponse(exc.url, status_code=status.HTTP_303_SEE_OTHER)
    secure = request.url.scheme == "https"
    response.set_cookie(TOKEN_COOKIE, exc.secret, httponly=True, samesite="lax", secure=secure)
    return response


async def _server_error(request: Request, exc: Exception) -> JSONResponse:
    # Logged with its traceback here; the client learns nothing about the server's insides.
    logger.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return _detail(status.HTTP_500_INTERNAL_SERVER_ERROR, "internal server error")


def install_error_handlers(app: FastAPI) -> None:
    """Map the domain's error family and validation errors to HTTP answers."""
    app.add_exception_handler(NotFound, _not_found)
    app.add_exception_handler(RequestInvalid, _request_invalid)
    app.add_exception_handler(RequestValidationError, _validation_failed)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Conflict, _conflict)
    app.add_exception_handler(PathRefused, _conflict)
    app.add_exception_handler(Unauthorized, _unauthorized)
    app.add_exception_handler(TokenInUrl, _token_to_cookie)
    app.add_exception_handler(Exception, _server_error)
