"""What the abuse guard keeps: the operators' deny list and what they did to it, and the circuit's breaks."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from webapp.models.base import Base, BigId, UTCDateTime


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
