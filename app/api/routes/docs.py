"""Swagger UI and ReDoc with their assets served from the package: no CDN, works offline."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import FileResponse, HTMLResponse

from app.dashboard import static_file

router = APIRouter(include_in_schema=False)

STATIC_DIR = Path(__file__).resolve().parents[1] / "static"
ASSET_DIRS = {"swagger-ui": STATIC_DIR / "swagger-ui", "redoc": STATIC_DIR / "redoc"}
ASSET_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css", ".png": "image/png"}
OAUTH2_REDIRECT = "/docs/oauth2-redirect"


def _root(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/")


@router.get("/docs")
def swagger_ui(request: Request) -> HTMLResponse:
    """Swagger UI."""
    root = _root(request)
    return get_swagger_ui_html(
        openapi_url=f"{root}{request.app.openapi_url}",
        title=f"{request.app.title} - Swagger UI",
        oauth2_redirect_url=f"{root}{OAUTH2_REDIRECT}",
        swagger_js_url=f"{root}/static/swagger-ui/swagger-ui-bundle.js",
        swagger_css_url=f"{root}/static/swagger-ui/swagger-ui.css",
        swagger_favicon_url=f"{root}/static/swagger-ui/favicon-32x32.png",
        # The spec validator's badge is fetched from validator.swagger.io: off.
        swagger_ui_parameters={"validatorUrl": None},
    )


@router.get(OAUTH2_REDIRECT)
def swagger_ui_redirect() -> HTMLResponse:
    """Swagger UI's OAuth2 redirect page."""
    return get_swagger_ui_oauth2_redirect_html()


@router.get("/redoc")
def redoc(request: Request) -> HTMLResponse:
    """ReDoc."""
    root = _root(request)
    return get_redoc_html(
        openapi_url=f"{root}{request.app.openapi_url}",
        title=f"{request.app.title} - ReDoc",
        redoc_js_url=f"{root}/static/redoc/redoc.standalone.js",
        redoc_favicon_url=f"{root}/static/swagger-ui/favicon-32x32.png",
        with_google_fonts=False,
    )


@router.get("/static/{bundle}/{name}")
def docs_asset(bundle: str, name: str) -> FileResponse:
    """A Swagger UI or ReDoc asset."""
    path = static_file(ASSET_DIRS.get(bundle), name)
    return FileResponse(path, media_type=ASSET_TYPES.get(path.suffix))
