"""The circuit breaker: breaks of a number range or a country, one per trip; calls never placed.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27

- `circuit_breaks.scope`: the country ("NL") or a range of its numbers ("+3161200");
  existing breaks were all of a country.
- `circuit_breaks.epoch` with a unique constraint on (scope, epoch): concurrent
  trips of one scope keep one row. Existing rows are numbered per country by
  time, which also keeps the duplicates one trip used to write apart.
- `circuit_breaks.networks` / `numbers`: the spread that tripped it (unknown before).
- `verifications.status = 'unplaced'`: the provider placed no call. Such rows
  were `failed`, like a code that never came right; they are told apart by the
  attempts log: no provider reference, or a start/resend refused with
  `provider_error` or `call_failed` and no call placed after it.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("circuit_breaks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("scope", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("epoch", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("networks", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("numbers", sa.Integer(), nullable=True))
    op.execute("UPDATE circuit_breaks SET scope = country")
    op.execute(
        "UPDATE circuit_breaks SET epoch = (SELECT count(*) FROM circuit_breaks AS earlier"
        " WHERE earlier.country = circuit_breaks.country AND (earlier.opened_at < circuit_breaks.opened_at"
        " OR (earlier.opened_at = circuit_breaks.opened_at AND earlier.id < circuit_breaks.id)))"
    )
    with op.batch_alter_table("circuit_breaks", schema=None) as batch_op:
        batch_op.alter_column("scope", existing_type=sa.String(length=16), nullable=False)
        batch_op.alter_column("epoch", existing_type=sa.Integer(), nullable=False)
        batch_op.create_unique_constraint("uq_circuit_breaks_scope_epoch", ["scope", "epoch"])

    op.execute(
        "UPDATE verifications SET status = 'unplaced' WHERE status = 'failed' AND (provider_ref IS NULL OR EXISTS ("
        " SELECT 1 FROM attempts AS refused WHERE refused.verification_id = verifications.id"
        " AND refused.kind IN ('start', 'resend') AND refused.outcome IN ('provider_error', 'call_failed')"
        " AND NOT EXISTS (SELECT 1 FROM attempts AS placed WHERE placed.verification_id = verifications.id"
        " AND placed.outcome = 'sent' AND placed.id > refused.id)))"
    )


def downgrade() -> None:
    op.execute("UPDATE verifications SET status = 'failed' WHERE status = 'unplaced'")
    # Before 0004 every break stopped a whole country: a range's break would stop its country.
    op.execute("DELETE FROM circuit_breaks WHERE scope <> country")
    with op.batch_alter_table("circuit_breaks", schema=None) as batch_op:
        batch_op.drop_constraint("uq_circuit_breaks_scope_epoch", type_="unique")
        batch_op.drop_column("numbers")
        batch_op.drop_column("networks")
        batch_op.drop_column("epoch")
        batch_op.drop_column("scope")
