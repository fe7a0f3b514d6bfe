"""A flood is one row with a count: `attempts.count`, the requests a row stands for.

Identical refusals within ATTEMPTS_FOLD_SECONDS are folded into one row by
the attempts writer (webapp/attempt_writer.py); every row before this
revision stands for one request.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("attempts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("count", sa.Integer(), server_default=sa.text("1"), nullable=False))


def downgrade() -> None:
    # A folded row becomes one row again: the requests it stood for are no longer told apart.
    with op.batch_alter_table("attempts", schema=None) as batch_op:
        batch_op.drop_column("count")
