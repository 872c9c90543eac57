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


def test_ids_are_never_reused_after_upgrading_a_database_with_rows(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = make_engine(url)
    try:
        command.upgrade(alembic_config(url), "0005")
        with engine.begin() as connection:
            for statement in _OLD_ROWS.split(";"):
                connection.execute(text(statement))
        upgrade_head(engine)
        with engine.begin() as connection:
            tables = connection.execute(text("SELECT sql FROM sqlite_master WHERE type='table'"))
            autoincrement = [sql for (sql,) in tables if "AUTOINCREMENT" in sql]
            assert len(autoincrement) == 4
            rows = connection.execute(text("SELECT j.id, j.run_id, a.job_id FROM job j "
                                           "JOIN attempt a ON a.job_id = j.id")).all()  # fmt: skip
            assert rows == [(7, 3, 7)]
            assert connection.execute(text("PRAGMA foreign_key_check")).all() == []
            for table in ("attempt", "skipevent", "job", "run"):
                connection.execute(text(f"DELETE FROM {table}"))
            connection.execute(text(_OLD_ROWS.split(";")[0].replace("(3,", "(NULL,")))
            (new_id,) = connection.execute(text("SELECT id FROM run")).one()
        assert new_id == 4  # not 3 again: run 3's folder, runs/3, stays its own
        assert _pending_diff(engine) == []
    finally:
        engine.dispose()


_OLD_ROWS = """
INSERT INTO run (id, phase_c_root, phase_d_root, artifact_root, design, training,
    execution, filters, strict, dry_run, submitted_by, created_at)
    VALUES (3, 'c', 'd', 'runs/3', '{}', '{}', '{}', '{}', 0, 0, 'local', '2026-12-01 00:00:00');
INSERT INTO job (id, run_id, position, kind, dose, view, gridsize, train_data_path,
    test_data_path, log_path, artifact_dir, status, attempts, failures, max_attempts,
    cancel_requested, created_at, updated_at)
    VALUES (7, 3, 0, 'train', 1000.0, 'baseline', 1, 't', 't', 'l', 'a', 'running', 1, 0, 3, 0,
    '2026-12-01 00:00:00', '2026-12-01 00:00:00');
INSERT INTO attempt (id, job_id, number, worker, started_at, outcome, lease_token)
    VALUES (1, 7, 1, 'w', '2026-12-01 00:00:00', 'running', 'tok');
INSERT INTO skipevent (id, run_id, dose, view, code, reason, train_exists, test_exists, details)
    VALUES (1, 3, 1000.0, 'sparse', 'data_missing', 'r', 0, 0, '{}')
"""


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
