"""The JSON API's table (webapp/api): the idempotency keys clients send with a create."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from webapp.models.base import Base, BigId, UTCDateTime

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
