"""Indexes on the hand-off's expiry times, so that `voice2fa prune` finds what has expired without a scan.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = {
    "oidc_authorization_requests": "ix_oidc_authorization_requests_expires",
    "oidc_authorization_codes": "ix_oidc_authorization_codes_expires",
    "oidc_access_tokens": "ix_oidc_access_tokens_expires",
}


def upgrade() -> None:
    for table, index in INDEXES.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_index(index, ["expires_at"], unique=False)


def downgrade() -> None:
    for table, index in INDEXES.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(index)
