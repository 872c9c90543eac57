"""`ptychojobs migrate`: the compose file's one-shot migration, without alembic.ini."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from typer.testing import CliRunner

from app.cli import cli
from app.core.config import get_settings
from app.migrate import alembic_config


def test_migrate_creates_every_table_at_head(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PTYCHOJOBS_DATA_ROOT", str(tmp_path))
    monkeypatch.chdir(tmp_path)  # no alembic.ini here: the config is built in code
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli, ["migrate"])
    finally:
        get_settings.cache_clear()

    assert result.exit_code == 0, result.output
    assert "newest schema" in result.output
    with sqlite3.connect(tmp_path / "ptychojobs.db") as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
        (version,) = db.execute("SELECT version_num FROM alembic_version").fetchone()
    assert {"run", "job", "attempt", "skipevent"} <= tables
    assert version == ScriptDirectory.from_config(alembic_config()).get_current_head()
