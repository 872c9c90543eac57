"""reconstruction jobs: a job's kind, engine and split; a run's reconstruction options

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 14:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "kind",
                sqlmodel.sql.sqltypes.AutoString(),
                server_default="train",
                nullable=False,
            )
        )
        batch_op.add_column(sa.Column("engine", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch_op.add_column(sa.Column("split", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
    with op.batch_alter_table("run", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reconstruction", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("run", schema=None) as batch_op:
        batch_op.drop_column("reconstruction")
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.drop_column("split")
        batch_op.drop_column("engine")
        batch_op.drop_column("kind")
