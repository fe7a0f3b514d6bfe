"""The abuse guard: deny list, country circuit breaks, one live verification per number.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 14:18:48.506574
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "circuit_breaks",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("country", sa.String(length=3), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("verified_share", sa.Float(), nullable=False),
        sa.Column("window", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_circuit_breaks")),
    )
    with op.batch_alter_table("circuit_breaks", schema=None) as batch_op:
        batch_op.create_index("ix_circuit_breaks_country_until", ["country", "until"], unique=False)

    op.create_table(
        "deny_entries",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("value", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deny_entries")),
        sa.UniqueConstraint("kind", "value", name="uq_deny_entries_kind_value"),
    )
    with op.batch_alter_table("verifications", schema=None) as batch_op:
        batch_op.create_index("ix_verifications_country_created", ["country", "created_at"], unique=False)
        # Live verifications left behind before this migration would break the
        # unique index below; the code of each has long expired.
        batch_op.execute("UPDATE verifications SET status = 'expired' WHERE status = 'pending'")
        batch_op.create_index(
            "uq_verifications_live_number",
            ["number"],
            unique=True,
            sqlite_where=sa.text("status = 'pending'"),
            postgresql_where=sa.text("status = 'pending'"),
        )


def downgrade() -> None:
    with op.batch_alter_table("verifications", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_verifications_live_number",
            sqlite_where=sa.text("status = 'pending'"),
            postgresql_where=sa.text("status = 'pending'"),
        )
        batch_op.drop_index("ix_verifications_country_created")

    op.drop_table("deny_entries")
    with op.batch_alter_table("circuit_breaks", schema=None) as batch_op:
        batch_op.drop_index("ix_circuit_breaks_country_until")

    op.drop_table("circuit_breaks")
