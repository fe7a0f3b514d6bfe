"""The OpenID Connect hand-off's tables (webapp/oidc): clients, keys, secrets, requests, codes, tokens."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from webapp.models.base import Base, UTCDateTime


class OidcClient(Base):
    """A site registered to hand its sign-up flow over (`voice2fa client add`)."""

    __tablename__ = "oidc_clients"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # the client_id
    name: Mapped[str] = mapped_column(String(100))
    #: passwords.hash_password of the secret; the secret itself is never stored
    secret_hash: Mapped[str] = mapped_column(String(200))
    #: matched by exact string comparison
    redirect_uris: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class OidcSigningKey(Base):
    """An RSA key that signs ID tokens; published in the JWKS until retired."""

    __tablename__ = "oidc_signing_keys"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)  # RFC 7638 thumbprint
    private_pem: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class OidcSecret(Base):
    """A server-wide secret every worker shares, e.g. what pairwise `sub` values are derived from."""

    __tablename__ = "oidc_secrets"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class _ForClient:
    """What the hand-off's requests, codes and tokens each hold: the client's, for a scope, until they expire.

    Expired rows are of no use: `voice2fa prune` deletes them by `expires_at`.
    """

    client_id: Mapped[str] = mapped_column(ForeignKey("oidc_clients.id", ondelete="CASCADE"))
    scope: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())


class OidcAuthorizationRequest(_ForClient, Base):
    """A validated authorization request waiting for a verification in the same browser session."""

    __tablename__ = "oidc_authorization_requests"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # opaque, random
    redirect_uri: Mapped[str] = mapped_column(String(2000))
    state: Mapped[str | None] = mapped_column(Text)
    nonce: Mapped[str | None] = mapped_column(Text)
    code_challenge: Mapped[str] = mapped_column(String(128))  # S256
    login_hint: Mapped[str | None] = mapped_column(String(64))
    #: when a code was issued for it or the person cancelled: it is over
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_oidc_authorization_requests_expires", "expires_at"),)  # for `voice2fa prune`


class OidcAuthorizationCode(_ForClient, Base):
    """A one-time code, stored as its SHA-256: what the token endpoint exchanges."""

    __tablename__ = "oidc_authorization_codes"

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    redirect_uri: Mapped[str] = mapped_column(String(2000))
    nonce: Mapped[str | None] = mapped_column(Text)
    code_challenge: Mapped[str] = mapped_column(String(128))
    number: Mapped[str] = mapped_column(String(16))  # E.164, as verified
    auth_time: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_oidc_authorization_codes_expires", "expires_at"),)


class OidcAccessToken(_ForClient, Base):
    """An opaque, short-lived access token for the userinfo endpoint, stored as its SHA-256."""

    __tablename__ = "oidc_access_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: the code it was issued for: a second use of that code revokes it
    code_hash: Mapped[str] = mapped_column(String(64))
    number: Mapped[str] = mapped_column(String(16))

    __table_args__ = (
        Index("ix_oidc_access_tokens_code", "code_hash"),
        Index("ix_oidc_access_tokens_expires", "expires_at"),
    )
