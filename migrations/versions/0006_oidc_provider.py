"""The OpenID Connect hand-off: clients, signing keys, requests, codes, tokens; attempts.client_id.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC = sa.DateTime(timezone=True)


def _client_fk(table: str) -> sa.Column[str]:
    """The client a row belongs to; removing the client removes the row."""
    return sa.Column(
        "client_id",
        sa.String(length=32),
        sa.ForeignKey(
            "oidc_clients.id",
            name=f"fk_{table}_client_id_oidc_clients",
            ondelete="CASCADE",
        ),
        nullable=False,
    )


def upgrade() -> None:
    op.create_table(
        "oidc_clients",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("secret_hash", sa.String(length=200), nullable=False),
        sa.Column("redirect_uris", sa.JSON(), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("last_used_at", UTC, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_oidc_clients")),
    )
    op.create_table(
        "oidc_signing_keys",
        sa.Column("kid", sa.String(length=64), nullable=False),
        sa.Column("private_pem", sa.Text(), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("retired_at", UTC, nullable=True),
        sa.PrimaryKeyConstraint("kid", name=op.f("pk_oidc_signing_keys")),
    )
    op.create_table(
        "oidc_secrets",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("value", sa.String(length=128), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_oidc_secrets")),
    )
    op.create_table(
        "oidc_authorization_requests",
        sa.Column("id", sa.String(length=64), nullable=False),
        _client_fk("oidc_authorization_requests"),
        sa.Column("redirect_uri", sa.String(length=2000), nullable=False),
        sa.Column("scope", sa.String(length=200), nullable=False),
        sa.Column("state", sa.Text(), nullable=True),
        sa.Column("nonce", sa.Text(), nullable=True),
        sa.Column("code_challenge", sa.String(length=128), nullable=False),
        sa.Column("login_hint", sa.String(length=64), nullable=True),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("expires_at", UTC, nullable=False),
        sa.Column("finished_at", UTC, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_oidc_authorization_requests")),
    )
    op.create_table(
        "oidc_authorization_codes",
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        _client_fk("oidc_authorization_codes"),
        sa.Column("redirect_uri", sa.String(length=2000), nullable=False),
        sa.Column("scope", sa.String(length=200), nullable=False),
        sa.Column("nonce", sa.Text(), nullable=True),
        sa.Column("code_challenge", sa.String(length=128), nullable=False),
        sa.Column("number", sa.String(length=16), nullable=False),
        sa.Column("auth_time", UTC, nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("expires_at", UTC, nullable=False),
        sa.Column("used_at", UTC, nullable=True),
        sa.PrimaryKeyConstraint("code_hash", name=op.f("pk_oidc_authorization_codes")),
    )
    op.create_table(
        "oidc_access_tokens",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        _client_fk("oidc_access_tokens"),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("number", sa.String(length=16), nullable=False),
        sa.Column("scope", sa.String(length=200), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("expires_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_oidc_access_tokens")),
    )
    with op.batch_alter_table("oidc_access_tokens", schema=None) as batch_op:
        batch_op.create_index("ix_oidc_access_tokens_code", ["code_hash"], unique=False)

    with op.batch_alter_table("attempts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("client_id", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("reason", sa.String(length=120), nullable=True))
        batch_op.create_index("ix_attempts_client_created", ["client_id", "created_at", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("attempts", schema=None) as batch_op:
        batch_op.drop_index("ix_attempts_client_created")
        batch_op.drop_column("reason")
        batch_op.drop_column("client_id")

    with op.batch_alter_table("oidc_access_tokens", schema=None) as batch_op:
        batch_op.drop_index("ix_oidc_access_tokens_code")
    for table in (
        "oidc_access_tokens",
        "oidc_authorization_codes",
        "oidc_authorization_requests",
        "oidc_secrets",
        "oidc_signing_keys",
        "oidc_clients",
    ):
        op.drop_table(table)
