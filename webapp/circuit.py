"""The pumping circuit breaker, per country.

Toll fraud shows as calls that nobody answers with a code: a bot requests
calls to numbers it earns from, and never types anything. When too few of a
country's recent calls end verified, calls to that country stop for a while.
Only *settled* calls count (verified, or over: failed, expired, cancelled),
so a burst of honest calls still waiting for their codes does not trip it;
and only calls made since the last break ended, so it does not re-trip on
the same history.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from webapp.models import CircuitBreak, Verification
from webapp.settings import Settings

log = logging.getLogger(__name__)


async def open_break(session: AsyncSession, country: str, now: datetime) -> CircuitBreak | None:
    """The break in force for `country`, if any."""
    query = (
        select(CircuitBreak)
        .where(CircuitBreak.country == country, CircuitBreak.until > now)
        .order_by(CircuitBreak.until.desc())
        .limit(1)
    )
    return await session.scalar(query)


async def trip_if_pumped(session: AsyncSession, country: str, now: datetime, settings: Settings) -> CircuitBreak | None:
    """Open a break for `country` when its recent calls look pumped; the new break, or None."""
    last_end = await session.scalar(
        select(CircuitBreak.until).where(CircuitBreak.country == country).order_by(CircuitBreak.until.desc()).limit(1)
    )
    query = (
        select(Verification.status)
        .where(
            Verification.country == country,
            or_(Verification.status != "pending", Verification.expires_at <= now),
        )
        .order_by(Verification.created_at.desc())
        .limit(settings.circuit_window)
    )
    if last_end is not None:
        query = query.where(Verification.created_at >= last_end)
    statuses = list((await session.scalars(query)).all())
    if len(statuses) < settings.circuit_window:
        return None
    share = statuses.count("verified") / len(statuses)
    if share >= settings.circuit_min_verified:
        return None
    opened = CircuitBreak(
        country=country,
        opened_at=now,
        until=now + timedelta(seconds=settings.circuit_cooloff),
        verified_share=share,
        window=len(statuses),
    )
    session.add(opened)
    await session.commit()
    log.warning(
        "circuit breaker: calls to %s stopped until %s: %.0f %% of the last %d calls ended verified (threshold %.0f %%)",
        country, opened.until.isoformat(), share * 100, len(statuses), settings.circuit_min_verified * 100,
    )
    return opened


async def recent_breaks(session: AsyncSession, limit: int = 20) -> list[CircuitBreak]:
    """The latest breaks, open or over, newest first (for the operators' pages)."""
    query = select(CircuitBreak).order_by(CircuitBreak.opened_at.desc(), CircuitBreak.id.desc()).limit(limit)
    return list((await session.scalars(query)).all())
