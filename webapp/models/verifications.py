"""The attempts log: verifications in progress and one row per decision."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from webapp.models.base import Base, BigId, UTCDateTime


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
