"""The summary of a filter: outcome counts, conversion per country, site and provider, top talkers, a time series.

It covers the filtered time range (24 hours unless the operator asks for
more), and its queries are bounded by the same indexes as the filter's
(webapp.reports). Counts are of requests, not rows: a row stands for `count`
identical refusals folded into it (webapp.attempt_writer).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, SQLColumnExpression, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from webapp.models import Attempt
from webapp.outcomes import Outcome
from webapp.reports import AttemptFilter, group

#: Digits of a number that make its "prefix" in the summary: "+" and 6 digits.
PREFIX_CHARS = 7


@dataclass
class SiteCounts:
    """A hand-off site's funnel: requests it sent, calls placed for them, verified, codes it got back."""

    started: int = 0
    placed: int = 0
    verified: int = 0
    returned: int = 0

    @property
    def conversion(self) -> float | None:
        """Verified / calls placed, as for a country."""
        return self.verified / self.placed if self.placed else None


#: The outcomes a site's funnel counts, and where.
SITE_STEPS: dict[str, str] = {
    Outcome.HANDOFF_STARTED: "started",
    Outcome.SENT: "placed",
    Outcome.VERIFIED: "verified",
    Outcome.CODE_ISSUED: "returned",
}


@dataclass
class Summary:
    """Counts over the filtered range."""

    outcomes: Counter[str] = field(default_factory=Counter)
    #: region → (calls placed, verified)
    countries: dict[str, tuple[int, int]] = field(default_factory=dict)
    #: a hand-off site's client_id → its funnel, busiest first
    sites: dict[str, SiteCounts] = field(default_factory=dict)
    #: provider → its outcomes (sent, verified, provider_failover, provider_error …)
    providers: dict[str, Counter[str]] = field(default_factory=dict)
    top_numbers: list[tuple[str, int]] = field(default_factory=list)
    top_ips: list[tuple[str, int]] = field(default_factory=list)
    top_prefixes: list[tuple[str, int]] = field(default_factory=list)
    #: (bucket start, counts by outcome group), oldest first
    series: list[tuple[datetime, Counter[str]]] = field(default_factory=list)
    bucket: timedelta = timedelta(hours=1)

    @property
    def total(self) -> int:
        return sum(self.outcomes.values())

    @property
    def placed(self) -> int:
        return self.outcomes["sent"]

    @property
    def conversion(self) -> float | None:
        return self.outcomes["verified"] / self.placed if self.placed else None


async def summary(session: AsyncSession, where: AttemptFilter, now: datetime, top: int = 5) -> Summary:
    """Outcome counts, conversion overall and per country, top talkers and a time series."""
    conditions = where.conditions()
    result = Summary()
    since = where.since
    if since is None:
        since = await session.scalar(select(func.min(Attempt.created_at)).where(*conditions))
        if since is None:
            return result
    until = where.until or now
    result.bucket = timedelta(hours=1) if until - since <= timedelta(hours=72) else timedelta(days=1)
    hourly = result.bucket == timedelta(hours=1)

    # One pass for the outcome counts, the countries, the sites, the providers and the time series.
    bucket_of = _bucket(session, hourly)
    rows = await session.execute(
        select(bucket_of, Attempt.region, Attempt.client_id, Attempt.provider, Attempt.outcome, func.sum(Attempt.count))
        .where(*conditions)
        .group_by(bucket_of, Attempt.region, Attempt.client_id, Attempt.provider, Attempt.outcome)
    )
    placed: Counter[str] = Counter()
    verified: Counter[str] = Counter()
    series: dict[datetime, Counter[str]] = defaultdict(Counter)
    sites: dict[str, SiteCounts] = defaultdict(SiteCounts)
    providers: dict[str, Counter[str]] = defaultdict(Counter)
    for label, region, client_id, provider, outcome, requests in rows:
        count = int(requests)  # requests: the rows' counts summed
        result.outcomes[outcome] += count
        if provider:
            providers[provider][outcome] += count
        if client_id and outcome in SITE_STEPS:
            step = SITE_STEPS[outcome]
            setattr(sites[client_id], step, getattr(sites[client_id], step) + count)
        if outcome == Outcome.SENT:
            placed[region or "?"] += count
        elif outcome == Outcome.VERIFIED:
            verified[region or "?"] += count
        series[_bucket_start(label, hourly)][group(outcome)] += count
    result.countries = {
        region: (placed[region], verified[region])
        for region in sorted(set(placed) | set(verified), key=lambda r: -placed[r])
    }
    result.providers = dict(sorted(providers.items()))
    result.sites = dict(sorted(sites.items(), key=lambda item: (-item[1].started, -item[1].placed, item[0])))
    first = since.replace(minute=0, second=0, microsecond=0)
    if not hourly:
        first = first.replace(hour=0)
    moment = first
    while moment < until and len(result.series) < 1000:
        result.series.append((moment, series.get(moment, Counter())))
        moment += result.bucket

    result.top_numbers = await _top(session, Attempt.number, conditions, top)
    result.top_ips = await _top(session, Attempt.ip, conditions, top)
    result.top_prefixes = await _top(session, func.substr(Attempt.number, 1, PREFIX_CHARS), conditions, top)
    return result


async def _top(
    session: AsyncSession, column: SQLColumnExpression[str | None], conditions: list[ColumnElement[bool]], top: int
) -> list[tuple[str, int]]:
    # Grouped by `column || ''`, which no index is sorted by: otherwise SQLite's
    # planner walks the whole number/IP index to skip a sort, instead of the
    # time range it was asked for (115 ms rather than 10 at a million rows).
    key = column.concat("")
    requests = func.sum(Attempt.count)
    query = (
        select(key, requests.label("n"))
        .where(*conditions, column.is_not(None))
        .group_by(key)
        .order_by(requests.desc(), key)
        .limit(top)
    )
    return [(value, int(count)) for value, count in (await session.execute(query)).all()]


def _bucket(session: AsyncSession, hourly: bool) -> ColumnElement[object]:
    if session.get_bind().dialect.name == "sqlite":
        # Stored as "YYYY-MM-DD HH:MM:SS…" text (UTC): the first 13 or 10 characters are the bucket.
        return func.substr(Attempt.created_at, 1, 13 if hourly else 10)
    return func.date_trunc("hour" if hourly else "day", func.timezone("UTC", Attempt.created_at))


def _bucket_start(label: object, hourly: bool) -> datetime:
    if isinstance(label, datetime):
        return label.replace(tzinfo=UTC)
    return datetime.strptime(str(label), "%Y-%m-%d %H" if hourly else "%Y-%m-%d").replace(tzinfo=UTC)
