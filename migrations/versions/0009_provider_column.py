"""Which provider a verification's call, and an attempt, went to (PROVIDERS, failover).

Before this revision MessageBird was the only provider: every verification is
MessageBird's, and so is every attempt that involved a provider (it has a
provider reference or a provider latency). Attempts no provider took part in
(refusals by the guard, typos, the hand-off's own rows) name none.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("verifications", schema=None) as batch_op:
        batch_op.add_column(sa.Column("provider", sa.String(length=16), nullable=True))
    with op.batch_alter_table("attempts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("provider", sa.String(length=16), nullable=True))
        batch_op.create_index("ix_attempts_provider_created", ["provider", "created_at", "id"], unique=False)
    op.execute("UPDATE verifications SET provider = 'messagebird'")
    op.execute(
        "UPDATE attempts SET provider = 'messagebird' WHERE provider_ref IS NOT NULL OR provider_latency_ms IS NOT NULL"
    )


def downgrade() -> None:
    with op.batch_alter_table("attempts", schema=None) as batch_op:
        batch_op.drop_index("ix_attempts_provider_created")
        batch_op.drop_column("provider")
    with op.batch_alter_table("verifications", schema=None) as batch_op:
        batch_op.drop_column("provider")
