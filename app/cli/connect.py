"""The CLI's way to the API: the address from the settings `serve` uses, errors as one line."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console
from rich.markup import escape

from app.cli.client import ApiError, ApiUnreachable, PtychoClient, default_api_url
from app.core.config import get_settings

err_console = Console(stderr=True, soft_wrap=True)

API_URL_HELP = "API address (default: PTYCHOJOBS_API_URL, else serve's host and port)"


def resolve_api_url(api_url: str | None) -> str:
    """An explicit --api-url, else the settings' address of the API."""
    return api_url or default_api_url(get_settings())


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print one error line on stderr; the caller raises the returned Exit."""
    err_console.print(f"[red]error:[/red] {escape(message)}", highlight=False)
    return typer.Exit(code)


@contextmanager
def api(api_url: str | None) -> Iterator[PtychoClient]:
    """A client of the API; an unreachable API or an error answer ends the command in one line."""
    base_url = resolve_api_url(api_url)
    try:
        token = get_settings().api_token.get_secret_value()
        with PtychoClient(base_url, token=token) as client:
            yield client
    except ApiUnreachable as exc:
        hint = "start it with `ptychojobs serve`, or give its address with --api-url"
        raise fail(f"{exc}; {hint} or PTYCHOJOBS_API_URL", code=2) from None
    except ApiError as exc:
        raise fail(str(exc)) from None
