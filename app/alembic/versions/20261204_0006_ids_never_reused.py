"""ids never reused: AUTOINCREMENT on SQLite for run, job, attempt and skipevent

A deleted run's id (and its default folder, runs/<id>) is never handed out again. SQLite
needs each table rebuilt for it (env.py turns foreign keys off around the rebuild and then
checks every reference); other databases' sequences never reuse ids, so nothing changes.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 19:30:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("run", "job", "attempt", "skipevent")


def _rebuild(autoincrement: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for table in TABLES:
        with op.batch_alter_table(
            table, recreate="always", table_kwargs={"sqlite_autoincrement": autoincrement}
        ):
            pass


def upgrade() -> None:
    _rebuild(True)


def downgrade() -> None:
    _rebuild(False)
