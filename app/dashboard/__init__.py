"""The dashboard: static pages, a small script and a style sheet, shipped in the package.

No build step and nothing fetched from elsewhere: the pages work on an offline cluster.
"""

from __future__ import annotations

from pathlib import Path

from app.errors import NotFound

STATIC_DIR = Path(__file__).resolve().parent / "static"
PAGES = {"runs": "index.html", "run": "run.html", "job": "job.html"}
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
    ".svg": "image/svg+xml",
}


def static_file(directory: Path | None, name: str) -> Path:
    """A file directly inside `directory` named `name`; NotFound for anything else."""
    missing = NotFound("asset", name, f"no asset named {name[:64]!r}")
    if directory is None or not name or "/" in name or "\\" in name or name.startswith("."):
        raise missing
    path = directory / name
    if not path.is_file():
        raise missing
    return path
