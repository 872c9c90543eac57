"""`ptychojobs token create|list|revoke`: API tokens, made and revoked on the database itself.

Run on the service's machine (it needs the database, not the API): the first token has to
exist before anything can call an API that requires one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console
from rich.table import Table
from sqlmodel import Session

from app import auth
from app.cli.connect import fail
from app.core.config import get_settings
from app.core.db import make_engine
from app.core.files import isoformat_z
from app.errors import Conflict, NotFound, RequestInvalid
from app.migrate import upgrade_head

console = Console()
tokens = typer.Typer(help="API tokens: create, list, revoke.", no_args_is_help=True)


@contextmanager
def _session() -> Iterator[Session]:
    settings = get_settings()
    engine = make_engine(
        settings.resolved_database_url, busy_timeout_ms=settings.sqlite_busy_timeout_ms
    )
    try:
        upgrade_head(engine)
        with Session(engine, expire_on_commit=False) as session:
            yield session
    finally:
        engine.dispose()


@tokens.command("create")
def create(name: str = typer.Argument(..., help="Who or what will use it, e.g. alice, ci")) -> None:
    """Make a token and print its secret (shown once: only its hash is stored)."""
    with _session() as session:
        try:
            made = auth.create_token(session=session, name=name)
        except (Conflict, RequestInvalid) as exc:
            raise fail(str(exc)) from None
    console.print(f"token {made.name!r} created; its secret (shown once, keep it safe):")
    typer.echo(made.secret)  # plain, last: TOKEN=$(ptychojobs token create ci | tail -n1)


@tokens.command("list")
def list_() -> None:
    """List tokens: name, created, last used, revoked (never the secrets)."""
    with _session() as session:
        rows = auth.list_tokens(session=session)
    table = Table(title="API tokens")
    for column in ("id", "name", "created", "last used", "revoked"):
        table.add_column(column)
    for token in rows:
        table.add_row(
            str(token.id),
            token.name,
            isoformat_z(token.created_at) or "",
            isoformat_z(token.last_used_at) or "never",
            isoformat_z(token.revoked_at) or "",
        )
    console.print(table)


@tokens.command("revoke")
def revoke(name: str = typer.Argument(..., help="The live token's name")) -> None:
    """Revoke a token: requests that send it are refused from now on."""
    with _session() as session:
        try:
            token = auth.revoke_token(session=session, name=name)
        except NotFound as exc:
            raise fail(str(exc)) from None
    console.print(f"token {token.name!r} revoked")


def register(cli: typer.Typer) -> None:
    cli.add_typer(tokens, name="token")
