"""The pumping circuit breaker: it stops number ranges, and a whole country only when it must.

Toll fraud ("pumping") shows as calls nobody answers with a code: bots ask
for calls to numbers that pay the pumper, and never type anything. So the
breaker judges the calls the provider placed that have *ended*: verified,
or unanswered (expired, or failed: the code never came right). Cancelled
verifications ("Use a different number") and calls the provider never
placed (status `unplaced`: a provider error or a "call failed" answer) never
count: the first costs an attacker nothing, the second is the provider's
trouble, not the country's.

A country's latest CIRCUIT_WINDOW ended calls are judged at each start of a
call there. They look pumped when fewer than CIRCUIT_MIN_VERIFIED of them
ended verified and the unanswered ones came from CIRCUIT_MIN_NETWORKS client
networks (per-IP limit keys) to CIRCUIT_MIN_NUMBERS numbers (webapp.pumping):
one client, or one number tried again and again, is the limits' business. Then:

- each *range* (the numbers alike but for their last CIRCUIT_RANGE_DIGITS
  digits) whose own unanswered calls show that spread is stopped: pumping
  concentrates on the ranges that pay, and honest numbers elsewhere in the
  country still get their calls;
- with no such range, the *country* is stopped only when its unanswered calls
  run at CIRCUIT_SURGE times its usual volume of calls (its placed calls
  over the CIRCUIT_HISTORY before them, scaled to the time the window took);
  with no history, the window alone decides. A provider that fails to deliver
  turns at most the usual volume into unanswered calls.

Calls a break has covered (in its scope, made before it opened) are not
judged again, so a scope does not re-trip on the same calls when its break
ends. One trip writes one break, also when several processes judge the same
calls at once: a scope's breaks are numbered (`epoch`) and a unique
constraint on (scope, epoch) lets the database keep the first.

Judging costs a query or two over the country's calls, so a process judges
a country at most once per JUDGE_EVERY seconds (`Judging`): of the starts that
arrive meanwhile, one judges and the others wait for it, then look for an
open break again; a flood of starts does not run the breaker's queries per
request. A break is still found by every start (`open_break`, one indexed
lookup); what waits up to a second is only the judging of calls that ended
since.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

import anyio
from sqlalchemy import and_, exists, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from webapp import pumping
from webapp.client_ip import limit_key
from webapp.models import CircuitBreak, Verification
from webapp.pumping import Call, Trip
from webapp.settings import Settings

log = logging.getLogger(__name__)

#: Statuses of a verification whose placed call has ended.
ENDED = ("verified", "expired", "failed")
#: Seconds (of the app's clock) between two judgings of one country in one process.
JUDGE_EVERY = 1.0


class Judging:
    """Single-flight judging per country: at most once per JUDGE_EVERY seconds, the others wait for it."""

    def __init__(self, every: float = JUDGE_EVERY) -> None:
        self._every = timedelta(seconds=every)
        self._last: dict[str, datetime] = {}
        #: judgings finished per country, so a request knows whether one ended after it looked for a break
        self._done: dict[str, int] = {}
        self._locks: weakref.WeakValueDictionary[str, anyio.Lock] = weakref.WeakValueDictionary()

    def ticket(self, country: str) -> int:
        """Taken before looking for an open break: what `judge` compares with."""
        return self._done.get(country, 0)

    async def judge(self, country: str, now: datetime, ticket: int, work: Callable[[], Awaitable[None]]) -> bool:
        """Run `work` unless the country was judged under JUDGE_EVERY ago; whether a judging ended since `ticket`.

        True means a break may have opened after the caller looked: look again.
        """
        last = self._last.get(country)
        if last is not None and now - last < self._every and not self._judging(country):
            return self._done.get(country, 0) != ticket
        lock = self._locks.get(country)
        if lock is None:
            lock = self._locks[country] = anyio.Lock()
        async with lock:
            last = self._last.get(country)
            if last is None or now - last >= self._every:
                try:
                    await work()
                finally:
                    self._last[country] = now
                    self._done[country] = self._done.get(country, 0) + 1
        return self._done.get(country, 0) != ticket

    def _judging(self, country: str) -> bool:
        lock = self._locks.get(country)
        return lock is not None and lock.locked()


async def open_break(session: AsyncSession, country: str, e164: str, now: datetime) -> CircuitBreak | None:
    """The break in force for this number (its range's or its country's), the longest if several."""
    scopes = [country] + [e164[:end] for end in range(2, len(e164) + 1)]
    query = (
        select(CircuitBreak)
        .where(CircuitBreak.country == country, CircuitBreak.scope.in_(scopes), CircuitBreak.until > now)
        .order_by(CircuitBreak.until.desc())
        .limit(1)
    )
    return await session.scalar(query)


async def trip_if_pumped(session: AsyncSession, country: str, now: datetime, settings: Settings) -> None:
    """Judge the country's latest ended calls, and open the breaks they call for."""
    calls = await _latest_calls(session, country, now, settings)
    if len(calls) < settings.circuit_window or not pumping.pumped(calls, settings):
        return
    trips = pumping.pumped_ranges(country, calls, settings)
    if not trips and await _surging(session, country, calls, now, settings):
        trips = [pumping.trip(country, country, calls)]
    for trip in trips:
        await _open(session, trip, now, settings)


async def breaks_in_force(session: AsyncSession, now: datetime) -> list[CircuitBreak]:
    """Every break open now, the one that ends last first (for the operators' pages)."""
    query = select(CircuitBreak).where(CircuitBreak.until > now).order_by(CircuitBreak.until.desc(), CircuitBreak.id)
    return list((await session.scalars(query)).all())


async def recent_breaks(session: AsyncSession, limit: int = 20) -> list[CircuitBreak]:
    """The latest breaks, open or over, newest first (for the operators' pages)."""
    query = select(CircuitBreak).order_by(CircuitBreak.opened_at.desc(), CircuitBreak.id.desc()).limit(limit)
    return list((await session.scalars(query)).all())


def _placed_and_ended(now: datetime) -> ColumnElement[bool]:
    # A provider reference with a status other than `unplaced` means the call went out;
    # a pending one past its expiry has ended unanswered even if nobody has marked it.
    return and_(
        Verification.provider_ref.is_not(None),
        or_(
            Verification.status.in_(ENDED),
            and_(Verification.status == "pending", Verification.expires_at <= now),
        ),
    )


def _not_covered() -> ColumnElement[bool]:
    covered = exists().where(
        CircuitBreak.country == Verification.country,
        CircuitBreak.opened_at >= Verification.created_at,
        or_(CircuitBreak.scope == CircuitBreak.country, Verification.number.startswith(CircuitBreak.scope)),
    )
    return ~covered


async def _latest_calls(session: AsyncSession, country: str, now: datetime, settings: Settings) -> list[Call]:
    query = (
        select(Verification.number, Verification.ip, Verification.status, Verification.created_at)
        .where(Verification.country == country, _placed_and_ended(now), _not_covered())
        .order_by(Verification.created_at.desc())
        .limit(settings.circuit_window)
    )
    rows = (await session.execute(query)).all()
    return [
        Call(number, limit_key(ip, settings.limit_ipv6_prefix), status == "verified", created_at)
        for number, ip, status, created_at in rows
    ]


async def _surging(session: AsyncSession, country: str, calls: list[Call], now: datetime, settings: Settings) -> bool:
    """The unanswered calls run well above the country's usual volume of calls (or it has none)."""
    oldest = min(call.created_at for call in calls)
    usual = (
        await session.scalar(
            select(func.count())
            .select_from(Verification)
            .where(
                Verification.country == country,
                Verification.provider_ref.is_not(None),
                Verification.status != "unplaced",
                Verification.created_at >= oldest - timedelta(seconds=settings.circuit_history),
                Verification.created_at < oldest,
                _not_covered(),
            )
        )
        or 0
    )
    unanswered = sum(not call.verified for call in calls)
    took = max(1.0, (now - oldest).total_seconds())
    expected = usual * took / settings.circuit_history
    surging = usual == 0 or unanswered >= settings.circuit_surge * expected
    if not surging:
        log.info(
            "circuit breaker: %d unanswered calls to %s spread across the country, but at its usual volume "
            "(%.1f calls in %.0f s): not stopping it",
            unanswered,
            country,
            expected,
            took,
        )
    return surging


async def _open(session: AsyncSession, trip: Trip, now: datetime, settings: Settings) -> None:
    """Open the break, unless another request has opened this scope's break for the same epoch."""
    last = await session.scalar(
        select(CircuitBreak).where(CircuitBreak.scope == trip.scope).order_by(CircuitBreak.epoch.desc()).limit(1)
    )
    if last is not None and last.until > now:
        return  # already stopped, by a request that judged these calls a moment earlier
    epoch = last.epoch + 1 if last is not None else 0
    opened = CircuitBreak(
        country=trip.country,
        scope=trip.scope,
        epoch=epoch,
        opened_at=now,
        until=now + timedelta(seconds=settings.circuit_cooloff),
        verified_share=trip.verified_share,
        window=trip.window,
        networks=trip.networks,
        numbers=trip.numbers,
    )
    session.add(opened)
    try:
        await session.commit()
    except IntegrityError:
        # Another process wrote this epoch's break between our look and our insert: theirs stands.
        await session.rollback()
        return
    what = trip.country if trip.scope == trip.country else f"numbers starting {trip.scope} ({trip.country})"
    log.warning(
        "circuit breaker: calls to %s stopped until %s: %.0f %% of the last %d ended calls verified "
        "(threshold %.0f %%), the unanswered ones from %d networks to %d numbers",
        what,
        opened.until.isoformat(),
        trip.verified_share * 100,
        trip.window,
        settings.circuit_min_verified * 100,
        trip.networks,
        trip.numbers,
    )
