"""The attempts log as operators read it: filters, keyset pages, the CSV's stream, a verification's rows.

Every query is bounded by an index: filters map onto the (column, created_at,
id) indexes of migration 0001, and pages are keyset (no OFFSET: page 1000
costs what page 1 costs). The summary of a filter is webapp.report_summary.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, SQLColumnExpression, and_, literal, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from webapp.models import Attempt, UTCDateTime, Verification
from webapp.outcomes import HANDOFF, LOGGED, Outcome

#: The outcomes the operators filter by (webapp.outcomes), in the order the filters list them.
OUTCOMES = LOGGED
#: The hand-off's own decisions: a site's request, its code, its tokens.
HANDOFF_OUTCOMES = HANDOFF
KINDS = ("start", "check", "resend", "cancel", "handoff", "token")
PERIODS = {
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "all": None,
}
DEFAULT_PERIOD = "24h"
PAGE_SIZE = 50
#: The times a filter or a page link may name: wide enough for any attempt
#: ever logged, and far enough from datetime's ends that the summary's hourly
#: and daily buckets never step past them.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(3000, 1, 1, tzinfo=UTC)
#: Attempt ids are 64-bit (BIGINT on PostgreSQL, INTEGER on SQLite): a bigger one is no row's.
MAX_ID = 2**63 - 1
_CURSOR = re.compile(r"(\d{8}T\d{6}\.\d{6}Z)~(\d{1,19})", re.ASCII)


def group(outcome: str) -> str:
    """The colour family of an outcome: verified, placed, person, blocked, system or handoff."""
    if outcome in HANDOFF_OUTCOMES:
        return "handoff"
    if outcome == Outcome.VERIFIED:
        return "verified"
    if outcome in (Outcome.SENT, Outcome.REUSED):
        return "placed"
    if outcome.startswith("blocked_"):
        return "blocked"
    if outcome in (
        Outcome.PROVIDER_ERROR,
        Outcome.PROVIDER_FAILOVER,
        Outcome.CALL_FAILED,
        Outcome.LIMITER_UNAVAILABLE,
        Outcome.VERIFICATION_BUSY,
    ):
        return "system"
    return "person"


@dataclass(frozen=True)
class AttemptFilter:
    """What the operator asked for; each field narrows the rows."""

    number: str | None = None  # E.164
    number_prefix: str | None = None  # "+3197"
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None
    outcomes: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    country: str | None = None
    client_id: str | None = None  # a hand-off's site
    provider: str | None = None  # messagebird | twilio
    since: datetime | None = None
    until: datetime | None = None

    def conditions(self) -> list[ColumnElement[bool]]:
        found: list[ColumnElement[bool]] = []
        if self.number:
            found.append(Attempt.number == self.number)
        if self.number_prefix:
            found.append(_string_prefix(Attempt.number, self.number_prefix))
        if self.network is not None:
            found.append(_in_network(self.network))
        if self.outcomes:
            found.append(Attempt.outcome.in_(self.outcomes))
        if self.kinds:
            found.append(Attempt.kind.in_(self.kinds))
        if self.country:
            found.append(Attempt.region == self.country)
        if self.client_id:
            found.append(Attempt.client_id == self.client_id)
        if self.provider:
            found.append(Attempt.provider == self.provider)
        if self.since is not None:
            found.append(Attempt.created_at >= self.since)
        if self.until is not None:
            found.append(Attempt.created_at < self.until)
        return found


def _string_prefix(column: SQLColumnExpression[str | None], prefix: str) -> ColumnElement[bool]:
    # A range rather than LIKE: it uses the index on both SQLite and PostgreSQL.
    return and_(column >= prefix, column < prefix[:-1] + chr(ord(prefix[-1]) + 1))


def _in_network(network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> ColumnElement[bool]:
    if network.num_addresses == 1:
        return Attempt.ip == str(network.network_address)
    if network.version == 4 and network.prefixlen >= 8:
        # Addresses are stored in canonical text: a /24 is the rows starting "203.0.113.".
        aligned = math.ceil(network.prefixlen / 8) * 8
        prefixes = [
            ".".join(str(sub.network_address).split(".")[: aligned // 8]) + "."
            for sub in network.subnets(new_prefix=aligned)
        ]
        return or_(*(_string_prefix(Attempt.ip, prefix) for prefix in prefixes))
    return Attempt.ip.in_([str(address) for address in network])  # small networks only (see parse)


@dataclass(frozen=True)
class Cursor:
    """A position in the newest-first order: (created_at, id)."""

    at: datetime
    id: int

    def __str__(self) -> str:
        return f"{self.at.strftime('%Y%m%dT%H%M%S.%fZ')}~{self.id}"

    @classmethod
    def parse(cls, text: str) -> Cursor:
        """A cursor from a page link; ValueError unless it is one this app could have made."""
        found = _CURSOR.fullmatch(text)
        if found is None:
            raise ValueError("not a page cursor")
        moment = datetime.strptime(found[1], "%Y%m%dT%H%M%S.%fZ").replace(tzinfo=UTC)
        ident = int(found[2])
        if not (EARLIEST <= moment < LATEST and 0 < ident <= MAX_ID):
            raise ValueError("page cursor out of range")
        return cls(moment, ident)


@dataclass
class Page:
    rows: list[Attempt]
    newer: Cursor | None  # pass as after= to see the newer page
    older: Cursor | None  # pass as before= to see the older page


async def page(
    session: AsyncSession,
    where: AttemptFilter,
    *,
    before: Cursor | None = None,
    after: Cursor | None = None,
    size: int = PAGE_SIZE,
) -> Page:
    """One page of attempts, newest first, by keyset."""
    key = tuple_(Attempt.created_at, Attempt.id)
    query = select(Attempt).where(*where.conditions())
    if after is not None:
        query = query.where(key > tuple_(_at(after.at), after.id)).order_by(Attempt.created_at, Attempt.id)
    else:
        if before is not None:
            query = query.where(key < tuple_(_at(before.at), before.id))
        query = query.order_by(Attempt.created_at.desc(), Attempt.id.desc())
    rows = list((await session.scalars(query.limit(size + 1))).all())
    more = len(rows) > size
    rows = rows[:size]
    if after is not None:
        rows.reverse()
        newer = _cursor(rows[0]) if more and rows else None
        older = _cursor(rows[-1]) if rows else None
    else:
        newer = _cursor(rows[0]) if before is not None and rows else None
        older = _cursor(rows[-1]) if more else None
    return Page(rows, newer, older)


def _at(moment: datetime) -> ColumnElement[datetime]:
    # Typed, so SQLite compares it in the stored (naive UTC text) form.
    return literal(moment, UTCDateTime())


def _cursor(row: Attempt) -> Cursor:
    return Cursor(row.created_at, row.id)


async def stream(session: AsyncSession, where: AttemptFilter, batch: int = 2000) -> AsyncIterator[Attempt]:
    """Every matching attempt, newest first, fetched in keyset batches (for the CSV export)."""
    before: Cursor | None = None
    while True:
        chunk = await page(session, where, before=before, size=batch)
        for row in chunk.rows:
            yield row
        if chunk.older is None:
            return
        before = chunk.older


async def verifications_for(session: AsyncSession, e164: str, limit: int = 20) -> list[Verification]:
    """A number's latest verifications, newest first."""
    query = (
        select(Verification).where(Verification.number == e164).order_by(Verification.created_at.desc()).limit(limit)
    )
    return list((await session.scalars(query)).all())


async def verification_attempts(
    session: AsyncSession, verification_id: str
) -> tuple[Verification | None, list[Attempt]]:
    """One verification and every attempt that belongs to it, oldest first."""
    verification = await session.get(Verification, verification_id)
    if verification is None:
        return None, []
    query = select(Attempt).where(Attempt.verification_id == verification_id).order_by(Attempt.created_at, Attempt.id)
    return verification, list((await session.scalars(query)).all())
