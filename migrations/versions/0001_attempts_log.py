"""The attempts log.

Verifications in progress and one attempts row per decision, indexed for
the operators' filters (time, number, IP, outcome, country; each + time).

Revision ID: 0001
Revises:
Create Date: 2026-11-26 14:02:12.805554
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "verifications",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("number", sa.String(length=16), nullable=False),
        sa.Column("country", sa.String(length=3), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("provider_ref", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("code_attempts", sa.Integer(), nullable=False),
        sa.Column("calls", sa.Integer(), nullable=False),
        sa.Column("ip", sa.String(length=45), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_call_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("verified_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_verifications")),
    )
    with op.batch_alter_table("verifications", schema=None) as batch_op:
        batch_op.create_index("ix_verifications_number_created", ["number", "created_at"], unique=False)

    op.create_table(
        "attempts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("number", sa.String(length=16), nullable=True),
        sa.Column("raw_input", sa.String(length=64), nullable=True),
        sa.Column("region", sa.String(length=3), nullable=True),
        sa.Column("ip", sa.String(length=45), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("outcome", sa.String(length=24), nullable=False),
        sa.Column("verification_id", sa.String(length=32), nullable=True),
        sa.Column("provider_ref", sa.String(length=64), nullable=True),
        sa.Column("provider_latency_ms", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["verification_id"],
            ["verifications.id"],
            name=op.f("fk_attempts_verification_id_verifications"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attempts")),
    )
    with op.batch_alter_table("attempts", schema=None) as batch_op:
        batch_op.create_index("ix_attempts_created", ["created_at", "id"], unique=False)
        batch_op.create_index("ix_attempts_ip_created", ["ip", "created_at", "id"], unique=False)
        batch_op.create_index("ix_attempts_number_created", ["number", "created_at", "id"], unique=False)
        batch_op.create_index("ix_attempts_outcome_created", ["outcome", "created_at", "id"], unique=False)
        batch_op.create_index("ix_attempts_region_created", ["region", "created_at", "id"], unique=False)
        batch_op.create_index("ix_attempts_verification", ["verification_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("attempts", schema=None) as batch_op:
        batch_op.drop_index("ix_attempts_verification")
        batch_op.drop_index("ix_attempts_region_created")
        batch_op.drop_index("ix_attempts_outcome_created")
        batch_op.drop_index("ix_attempts_number_created")
        batch_op.drop_index("ix_attempts_ip_created")
        batch_op.drop_index("ix_attempts_created")

    op.drop_table("attempts")
    with op.batch_alter_table("verifications", schema=None) as batch_op:
        batch_op.drop_index("ix_verifications_number_created")

    op.drop_table("verifications")
