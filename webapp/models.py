"""The attempts log: verifications in progress and one row per decision."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    ColumnElement,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Stable constraint names, so Alembic migrations look the same on every database.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def max_length(column: ColumnElement[Any]) -> int:
    """The length a String column was declared with: the one place such limits are written."""
    length = getattr(column.type, "length", None)
    assert isinstance(length, int), f"{column} has no length"
    return length


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, also on SQLite."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        # SQLite stores text: keep it naive there so comparisons sort as strings do.
        return value.replace(tzinfo=None) if getattr(dialect, "name", "") == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# SQLite only autoincrements an INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Verification(Base):
    """One number being verified: the server-side state behind the session cookie."""

    __tablename__ = "verifications"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # opaque, random
    number: Mapped[str] = mapped_column(String(16))  # E.164
    country: Mapped[str] = mapped_column(String(3))
    channel: Mapped[str] = mapped_column(String(8), default="tts")
    #: which provider placed its call (messagebird | twilio): its checks, resends and cancel go there;
    #: None until a provider answered
    provider: Mapped[str | None] = mapped_column(String(16))
    provider_ref: Mapped[str | None] = mapped_column(String(64))
    #: pending | verified | failed (the code never came right) | expired | cancelled
    #: | unplaced (the provider placed no call: it failed, or answered "call failed")
    status: Mapped[str] = mapped_column(String(16), default="pending")
    code_attempts: Mapped[int] = mapped_column(Integer, default=0)
    calls: Mapped[int] = mapped_column(Integer, default=1)
    ip: Mapped[str] = mapped_column(String(45))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_call_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: a check, a resend or a cancel holds the row until then (webapp.leases); None: free
    busy_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: which process holds it
    busy_by: Mapped[str | None] = mapped_column(String(16))
    #: the client that created it through the JSON API: only that client sees or acts on it there
    api_client_id: Mapped[str | None] = mapped_column(String(32))

    __table_args__ = (
        Index("ix_verifications_number_created", "number", "created_at"),
        Index("ix_verifications_country_created", "country", "created_at"),
        # One live verification per number, held by the database itself so
        # that concurrent starts in several processes cannot both call.
        Index(
            "uq_verifications_live_number",
            "number",
            unique=True,
            sqlite_where=text("status = 'pending'"),
            postgresql_where=text("status = 'pending'"),
        ),
    )


class Attempt(Base):
    """One decision of the flow, allowed or refused."""

    __tablename__ = "attempts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: start | check | resend
    kind: Mapped[str] = mapped_column(String(8))
    #: E.164 when the input parsed; otherwise None and raw_input holds it, truncated
    number: Mapped[str | None] = mapped_column(String(16))
    raw_input: Mapped[str | None] = mapped_column(String(64))
    region: Mapped[str | None] = mapped_column(String(3))
    ip: Mapped[str] = mapped_column(String(45))
    channel: Mapped[str] = mapped_column(String(8), default="tts")
    #: sent | verified | wrong_code | expired | invalid_number | invalid_code | provider_error | ...
    outcome: Mapped[str] = mapped_column(String(24))
    verification_id: Mapped[str | None] = mapped_column(ForeignKey("verifications.id", ondelete="SET NULL"))
    #: the provider the decision was about (messagebird | twilio); None where none was involved
    provider: Mapped[str | None] = mapped_column(String(16))
    provider_ref: Mapped[str | None] = mapped_column(String(64))
    provider_latency_ms: Mapped[int | None] = mapped_column(Integer)
    #: the OpenID Connect client of a hand-off decision; no foreign key, so the
    #: log keeps the id after the client is removed
    client_id: Mapped[str | None] = mapped_column(String(32))
    #: why, for a refusal that has more to say than its outcome (oidc_error)
    reason: Mapped[str | None] = mapped_column(String(120))
    #: how many requests the row stands for: identical refusals folded into it (webapp.attempt_writer).
    #: Only a server default, so that inserts written for older revisions (migration tests) still work.
    count: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    #: the door the request came through: "api" (the JSON API); None: the page (and the hand-off through it)
    via: Mapped[str | None] = mapped_column(String(8))

    __table_args__ = (
        Index("ix_attempts_created", "created_at", "id"),
        Index("ix_attempts_client_created", "client_id", "created_at", "id"),
        Index("ix_attempts_number_created", "number", "created_at", "id"),
        Index("ix_attempts_ip_created", "ip", "created_at", "id"),
        Index("ix_attempts_outcome_created", "outcome", "created_at", "id"),
        Index("ix_attempts_provider_created", "provider", "created_at", "id"),
        Index("ix_attempts_region_created", "region", "created_at", "id"),
        Index("ix_attempts_verification", "verification_id"),
    )


class DenyEntry(Base):
    """An operator's deny-list entry: a number, a number prefix or an IP network."""

    __tablename__ = "deny_entries"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    #: number (E.164) | prefix ("+3197") | ip (an address or CIDR)
    kind: Mapped[str] = mapped_column(String(8))
    value: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(String(64))

    __table_args__ = (UniqueConstraint("kind", "value", name="uq_deny_entries_kind_value"),)


class CircuitBreak(Base):
    """A number range, or a whole country, whose calls were stopped because too few of them ended verified."""

    __tablename__ = "circuit_breaks"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    country: Mapped[str] = mapped_column(String(3))
    #: what is stopped: the country itself ("NL"), or a range of its numbers by their prefix ("+3197010")
    scope: Mapped[str] = mapped_column(String(16))
    #: the scope's breaks numbered from 0: this one closes the scope's epoch since its previous break
    epoch: Mapped[int] = mapped_column(Integer)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime())
    until: Mapped[datetime] = mapped_column(UTCDateTime())
    #: the share of the `window` ended calls judged in the scope that ended verified
    verified_share: Mapped[float] = mapped_column(Float)
    window: Mapped[int] = mapped_column(Integer)
    #: how many client networks and numbers the unanswered ones came from (None: before migration 0004)
    networks: Mapped[int | None] = mapped_column(Integer)
    numbers: Mapped[int | None] = mapped_column(Integer)

    __table_args__ = (
        Index("ix_circuit_breaks_country_until", "country", "until"),
        # One trip writes one break, however many processes judged the same calls at once.
        UniqueConstraint("scope", "epoch", name="uq_circuit_breaks_scope_epoch"),
    )

    @property
    def whole_country(self) -> bool:
        """The break stops the whole country, not one range of its numbers."""
        return self.scope == self.country


class AdminAction(Base):
    """Something an operator did from the operators' pages: who, when, what."""

    __tablename__ = "admin_actions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    operator: Mapped[str] = mapped_column(String(64))
    #: deny | allow
    action: Mapped[str] = mapped_column(String(16))
    #: number | prefix | ip
    kind: Mapped[str] = mapped_column(String(8))
    value: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(String(200))

    __table_args__ = (Index("ix_admin_actions_at", "at"),)


# -- the OpenID Connect hand-off (webapp/oidc) --


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


class OidcAuthorizationRequest(Base):
    """A validated authorization request waiting for a verification in the same browser session."""

    __tablename__ = "oidc_authorization_requests"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # opaque, random
    client_id: Mapped[str] = mapped_column(ForeignKey("oidc_clients.id", ondelete="CASCADE"))
    redirect_uri: Mapped[str] = mapped_column(String(2000))
    scope: Mapped[str] = mapped_column(String(200))
    state: Mapped[str | None] = mapped_column(Text)
    nonce: Mapped[str | None] = mapped_column(Text)
    code_challenge: Mapped[str] = mapped_column(String(128))  # S256
    login_hint: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: when a code was issued for it or the person cancelled: it is over
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_oidc_authorization_requests_expires", "expires_at"),)  # for `voice2fa prune`


class OidcAuthorizationCode(Base):
    """A one-time code, stored as its SHA-256: what the token endpoint exchanges."""

    __tablename__ = "oidc_authorization_codes"

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("oidc_clients.id", ondelete="CASCADE"))
    redirect_uri: Mapped[str] = mapped_column(String(2000))
    scope: Mapped[str] = mapped_column(String(200))
    nonce: Mapped[str | None] = mapped_column(Text)
    code_challenge: Mapped[str] = mapped_column(String(128))
    number: Mapped[str] = mapped_column(String(16))  # E.164, as verified
    auth_time: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_oidc_authorization_codes_expires", "expires_at"),)


class OidcAccessToken(Base):
    """An opaque, short-lived access token for the userinfo endpoint, stored as its SHA-256."""

    __tablename__ = "oidc_access_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("oidc_clients.id", ondelete="CASCADE"))
    #: the code it was issued for: a second use of that code revokes it
    code_hash: Mapped[str] = mapped_column(String(64))
    number: Mapped[str] = mapped_column(String(16))
    scope: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        Index("ix_oidc_access_tokens_code", "code_hash"),
        Index("ix_oidc_access_tokens_expires", "expires_at"),
    )


# -- the JSON API (webapp/api) --

#: The longest `Idempotency-Key` kept.
IDEMPOTENCY_KEY_LENGTH = 255


class ApiIdempotencyKey(Base):
    """An `Idempotency-Key` a client sent with a create: claimed before the call, then the first answer."""

    __tablename__ = "api_idempotency_keys"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("oidc_clients.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(IDEMPOTENCY_KEY_LENGTH))
    #: SHA-256 of the request body as sent: the same key with another body is refused
    body_hash: Mapped[str] = mapped_column(String(64))
    #: the first answer's status and JSON body; None while the first request is still placing its call
    status: Mapped[int | None] = mapped_column(Integer)
    response: Mapped[dict[str, object] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        UniqueConstraint("client_id", "key", name="uq_api_idempotency_keys_client_key"),
        Index("ix_api_idempotency_keys_expires", "expires_at"),  # for `voice2fa prune`
    )
