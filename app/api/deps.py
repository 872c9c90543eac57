"""Request dependencies: database sessions, settings, ids, and the caller's API token."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Annotated, TypeVar
from urllib.parse import urlencode

import anyio
from fastapi import Depends, Path, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel import Session

from app import auth
from app.core.config import Settings
from app.core.db import read_engine
from app.errors import Unauthorized
from app.models import LOCAL_CALLER, ApiToken

MAX_ID = 2**63 - 1  # the largest id a database integer holds
HEAVY_READ_THREADS = 4  # reports, figures and manifests built at once (see heavy_read)
T = TypeVar("T")
TOKEN_COOKIE = "ptychojobs_token"
TOKEN_QUERY = "token"
_SAFE_METHODS = frozenset({"GET", "HEAD"})

bearer = HTTPBearer(auto_error=False, description="An API token: `ptychojobs token create`")


def get_session(request: Request) -> Iterator[Session]:
    """One session per request, on the app's engine; crud functions commit."""
    with Session(request.app.state.engine, expire_on_commit=False) as session:
        yield session


def get_read_session(request: Request) -> Iterator[Session]:
    """A session for requests that only read; on SQLite it never takes the write lock."""
    with Session(read_engine(request.app.state.engine), expire_on_commit=False) as session:
        yield session


def heavy_read(request: Request, work: Callable[[Session], T]) -> Awaitable[T]:
    """Run a slow read (a report, its figure, a rebuilt manifest) on a few threads of its own.

    Sync routes share one thread pool (40 threads); without a separate limit, a burst of
    slow reads would take every thread and `/health` would wait behind them. Here at most
    HEAVY_READ_THREADS run at once and the rest queue, while every other route keeps its pool.
    """
    app = request.app
    limiter = getattr(app.state, "heavy_read_limiter", None)
    if limiter is None:  # made on the event loop, on first use
        limiter = app.state.heavy_read_limiter = anyio.CapacityLimiter(HEAVY_READ_THREADS)

    def call() -> T:
        with Session(read_engine(app.state.engine), expire_on_commit=False) as session:
            return work(session)

    return anyio.to_thread.run_sync(call, limiter=limiter)


def get_app_settings(request: Request) -> Settings:
    """The settings the app was created with."""
    settings: Settings = request.app.state.settings
    return settings


class TokenInUrl(Exception):
    """A page opened with `?token=`: answered by a redirect that moves it into a cookie."""

    def __init__(self, url: str, secret: str) -> None:
        self.url = url
        self.secret = secret
        super().__init__(url)


def require_token(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)] = None,
) -> str:
    """The caller's token name; Unauthorized when tokens are required and none is valid.

    `Authorization: Bearer` works everywhere. Reads (GET, HEAD) also take the token from
    the `ptychojobs_token` cookie, which browsers' EventSource and images need; writes never
    do, so a page on another site cannot act with a visitor's cookie. `?token=` is taken on
    the dashboard's pages only (`/ui`), which answer it with a redirect that moves it into
    the cookie: a token never stays in a URL that is bookmarked, shared or logged.
    """
    settings = get_app_settings(request)
    if not settings.auth_required:
        return _remember(request, LOCAL_CALLER)
    secret = credentials.credentials if credentials is not None else None
    from_url = False
    if secret is None and request.method in _SAFE_METHODS:
        if _is_dashboard(request):
            # A link's `?token=` wins over the cookie: a stale cookie must not shadow it.
            secret = request.query_params.get(TOKEN_QUERY)
            from_url = secret is not None
        if secret is None:
            secret = request.cookies.get(TOKEN_COOKIE)
    if not secret:
        raise Unauthorized("an API token is required: send Authorization: Bearer <token>")
    token = _find(request, secret)
    if token is None:
        raise Unauthorized("unknown or revoked API token")
    with Session(request.app.state.engine, expire_on_commit=False) as session:
        auth.note_use(session=session, token=token)
    if from_url:
        _refuse_a_cross_site_cookie_swap(request, secret)
        raise TokenInUrl(_without_token(request), secret)
    return _remember(request, token.name)


def _is_dashboard(request: Request) -> bool:
    path = request.url.path
    return path == "/ui" or path.startswith("/ui/")


def _find(request: Request, secret: str) -> ApiToken | None:
    with Session(read_engine(request.app.state.engine), expire_on_commit=False) as session:
        return auth.find_token(session=session, presented=secret)


def _refuse_a_cross_site_cookie_swap(request: Request, secret: str) -> None:
    """A link from another site may not replace a visitor's valid cookie with its token.

    Such a link would sign the visitor in as the link's owner (login CSRF); browsers say
    where a navigation came from in `Sec-Fetch-Site`.
    """
    cookie = request.cookies.get(TOKEN_COOKIE)
    cross_site = request.headers.get("sec-fetch-site") == "cross-site"
    if cross_site and cookie and cookie != secret and _find(request, cookie) is not None:
        raise Unauthorized(
            "a link from another site may not replace this browser's API token: "
            "open the link from this site, or sign out first"
        )


def _remember(request: Request, name: str) -> str:
    request.state.caller = name
    return name


def _without_token(request: Request) -> str:
    query = [(k, v) for k, v in request.query_params.multi_items() if k != TOKEN_QUERY]
    return request.url.path + (f"?{urlencode(query)}" if query else "")


SessionDep = Annotated[Session, Depends(get_session)]
ReadSessionDep = Annotated[Session, Depends(get_read_session)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
CallerDep = Annotated[str, Depends(require_token)]
RunId = Annotated[int, Path(ge=1, le=MAX_ID, description="A run's id")]
JobId = Annotated[int, Path(ge=1, le=MAX_ID, description="A job's id")]
