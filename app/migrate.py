"""Bring a database to the newest schema with alembic, from code."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

# Inside the package, so an installed wheel carries its migrations (a checkout's top-level
# alembic.ini points here too).
MIGRATIONS = Path(__file__).resolve().parent / "alembic"


def alembic_config(url: str | None = None) -> Config:
    """The project's alembic configuration, built in code, pointed at `url` when given."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("path_separator", "os")
    if url:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["configure_logger"] = False  # keep the service's logging as it is
    return config


def upgrade_head(engine: Engine) -> None:
    """Apply every pending migration on `engine`'s database (a no-op when current)."""
    config = alembic_config()
    with engine.connect() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
