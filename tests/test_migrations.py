"""Migrations: `alembic upgrade head` on an empty database gives exactly the models' schema."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, inspect, text
from sqlalchemy.exc import OperationalError
from sqlmodel import SQLModel

import app
import app.models
from app.core.db import make_engine
from app.migrate import MIGRATIONS, alembic_config, upgrade_head

ROOT = Path(__file__).resolve().parents[1]

POSTGRES_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def _pending_diff(engine: Engine) -> list[object]:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, SQLModel.metadata))


def test_alembic_cli_upgrade_head_matches_the_models(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    env = {**os.environ, "PTYCHOJOBS_DATABASE_URL": url}
    alembic = [sys.executable, "-m", "alembic", "upgrade", "head"]
    done = subprocess.run(alembic, cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    engine = make_engine(url)
    try:
        assert _pending_diff(engine) == []
        assert set(inspect(engine).get_table_names()) == {
            "alembic_version",
            *SQLModel.metadata.tables,
        }
    finally:
        engine.dispose()


def test_checkout_ini_and_top_level_link_lead_to_the_packaged_migrations() -> None:
    assert MIGRATIONS.is_relative_to(Path(app.__file__).parent)
    assert (ROOT / "alembic").resolve() == MIGRATIONS
    from_ini = ScriptDirectory.from_config(Config(str(ROOT / "alembic.ini")))
    assert Path(from_ini.dir).resolve() == MIGRATIONS
    assert (MIGRATIONS / "script.py.mako").is_file()


def test_upgrade_is_idempotent_and_downgrade_empties(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'code.db'}"
    engine = make_engine(url)
    try:
        upgrade_head(engine)
        upgrade_head(engine)  # a second start finds nothing to do
        assert _pending_diff(engine) == []
        command.downgrade(alembic_config(url), "base")
        assert inspect(engine).get_table_names() == ["alembic_version"]
    finally:
        engine.dispose()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database, dropped afterwards; skipped when no server listens."""
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"ptychojobs_migrations_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as exc:
        admin.dispose()
        pytest.skip(f"PostgreSQL not reachable at 127.0.0.1:5432: {exc}")
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.mark.slow
def test_postgres_upgrade_head_matches_the_models(postgres_url: str) -> None:
    engine = make_engine(postgres_url)
    try:
        upgrade_head(engine)
        assert _pending_diff(engine) == []
    finally:
        engine.dispose()
