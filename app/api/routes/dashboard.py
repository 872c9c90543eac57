"""The dashboard's pages and assets, under /ui (served from the package, works offline)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import FileResponse, RedirectResponse

from app.api.deps import JobId, RunId
from app.dashboard import MEDIA_TYPES, PAGES, STATIC_DIR, static_file

router = APIRouter(tags=["dashboard"], include_in_schema=False)


def _page(name: str) -> FileResponse:
    return FileResponse(STATIC_DIR / PAGES[name], media_type=MEDIA_TYPES[".html"])


@router.get("/")
def home() -> RedirectResponse:
    """The service's home is the dashboard."""
    return RedirectResponse("ui/", status_code=307)


@router.get("/ui")
def dashboard_root() -> RedirectResponse:
    """The dashboard lives at /ui/."""
    return RedirectResponse("ui/", status_code=307)


@router.get("/ui/")
def runs_page() -> FileResponse:
    """Runs: status, progress and links, newest first."""
    return _page("runs")


@router.get("/ui/runs/{run_id}")
def run_page(run_id: RunId) -> FileResponse:
    """One run: the dose × view × gridsize matrix, live; the report figure."""
    return _page("run")


@router.get("/ui/jobs/{job_id}")
def job_page(job_id: JobId) -> FileResponse:
    """One job: loss curves, reconstruction, metrics and the log tail."""
    return _page("job")


@router.get("/ui/static/{name}")
def dashboard_asset(name: str) -> FileResponse:
    """A dashboard asset (script, style sheet)."""
    path = static_file(STATIC_DIR, name)
    return FileResponse(path, media_type=MEDIA_TYPES.get(path.suffix))
