"""The deny list from memory (`webapp.deny_cache`) and the circuit breaker's single-flight judging.

The cache is checked against a real database; its refresh interval runs on a
clock the test moves.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.support import NL_MOBILES, calls_placed, start_call
from webapp import denylist
from webapp.circuit import Judging
from webapp.deny_cache import DenyList, DenyListCache

Sessions = async_sessionmaker[AsyncSession]
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


class Ticking:
    """Seconds on a clock moved by hand (the guard's cache runs on the app's clock)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def deny(db: Sessions, text: str, at: datetime = NOW) -> None:
    async with db() as session:
        assert await denylist.add(session, denylist.parse_entry(text), reason=None, by="test", now=at)


async def allow(db: Sessions, text: str) -> None:
    async with db() as session:
        assert await denylist.remove(session, denylist.parse_entry(text))


@pytest.fixture
def ticking() -> Ticking:
    return Ticking()


@pytest.fixture
def cache(db: Sessions, ticking: Ticking) -> DenyListCache:
    return DenyListCache(db, now=ticking)


async def test_a_deny_made_elsewhere_counts_within_a_second(
    db: Sessions, cache: DenyListCache, ticking: Ticking
) -> None:
    assert not await cache.number_denied("+31612345678")
    await deny(db, "+31612345678")  # another process: `voice2fa deny add`
    ticking.now += 0.5
    assert not await cache.number_denied("+31612345678"), "the copy is trusted for a second"
    ticking.now += 0.5
    assert await cache.number_denied("+31612345678")


async def test_a_flood_asks_the_database_once_a_second(db: Sessions, cache: DenyListCache, ticking: Ticking) -> None:
    await deny(db, "203.0.113.0/24")
    answers = await asyncio.gather(*(cache.ip_denied(f"203.0.113.{i}") for i in range(100)))
    assert all(answers)
    assert (cache.checks, cache.loads) == (1, 1)
    ticking.now += 1
    assert await cache.ip_denied("203.0.113.9")
    assert (cache.checks, cache.loads) == (2, 1), "an unchanged list is not loaded again"


async def test_a_clock_set_back_makes_the_copy_stale_not_trusted_longer(
    db: Sessions, cache: DenyListCache, ticking: Ticking
) -> None:
    assert not await cache.number_denied("+31612345678")
    await deny(db, "+31612345678")
    ticking.now -= 3600  # the wall clock was set back an hour
    assert await cache.number_denied("+31612345678"), "looked again at once, not an hour later"


async def test_changed_makes_this_process_look_at_once(db: Sessions, cache: DenyListCache) -> None:
    assert not await cache.ip_denied("198.51.100.7")
    await deny(db, "198.51.100.7")
    cache.changed()
    assert await cache.ip_denied("198.51.100.7")


async def test_an_allow_is_seen_too(db: Sessions, cache: DenyListCache, ticking: Ticking) -> None:
    await deny(db, "+3197*")
    assert await cache.number_denied("+3197010000000")
    await allow(db, "+3197*")
    ticking.now += 1
    assert not await cache.number_denied("+3197010000000")


async def test_a_removal_and_an_addition_with_the_same_count_and_id_are_seen(
    db: Sessions, cache: DenyListCache, ticking: Ticking
) -> None:
    await deny(db, "+31612345678")
    assert await cache.number_denied("+31612345678")
    # SQLite hands the removed top id to the next row: only the time tells them apart.
    await allow(db, "+31612345678")
    await deny(db, "+31687654321", at=NOW + timedelta(seconds=5))
    ticking.now += 1
    assert not await cache.number_denied("+31612345678")
    assert await cache.number_denied("+31687654321")


@pytest.mark.parametrize(
    "number", ["+31612345678", "+31612345679", "+3161234567", "+44612345678", "+3197010000000", "+31_1"]
)
async def test_lookups_agree_with_the_database(db: Sessions, number: str) -> None:
    for entry in ("+31612345678", "+316123456*", "+3197*", "+3*"):
        await deny(db, entry)
    async with db() as session:
        expected = await denylist.number_denied(session, number)
        entries = [(e.kind, e.value) for e in await denylist.entries(session)]
    assert DenyList.of(entries).number_denied(number) is expected


@pytest.mark.parametrize(
    ("ip", "expected"),
    [
        ("203.0.113.7", True),
        ("::ffff:203.0.113.7", True),
        ("203.0.114.1", False),
        ("2001:db8::1", True),
        ("2001:db9::1", False),
        ("not an address", False),
        ("", False),
    ],
)
def test_networks_hold_their_addresses(ip: str, expected: bool) -> None:
    denied = DenyList.of([("ip", "203.0.113.0/24"), ("ip", "2001:db8::/32")])
    assert denied.ip_denied(ip) is expected


# -- the circuit breaker's judging ------------------------------------------------------------------


async def test_concurrent_starts_judge_a_country_once_and_all_look_again() -> None:
    judging, runs = Judging(), []

    async def work() -> None:
        runs.append(1)
        await asyncio.sleep(0.01)

    tickets = [judging.ticket("NL") for _ in range(20)]
    looks = await asyncio.gather(*(judging.judge("NL", NOW, ticket, work) for ticket in tickets))
    assert len(runs) == 1
    assert all(looks), "each start looks for a break again after the judging it waited for"


async def test_a_country_is_judged_at_most_once_a_second() -> None:
    judging, runs = Judging(), []

    async def work() -> None:
        runs.append(1)

    assert await judging.judge("NL", NOW, judging.ticket("NL"), work)
    ticket = judging.ticket("NL")
    assert not await judging.judge("NL", NOW + timedelta(seconds=0.9), ticket, work), "nothing new to look at"
    assert await judging.judge("BE", NOW + timedelta(seconds=0.9), judging.ticket("BE"), work), "countries apart"
    assert await judging.judge("NL", NOW + timedelta(seconds=1), ticket, work)
    assert len(runs) == 3


async def test_a_start_that_looked_before_a_judging_ended_looks_again() -> None:
    judging = Judging()
    ticket = judging.ticket("NL")  # this start looks for a break: none yet

    async def work() -> None:
        pass

    await judging.judge("NL", NOW, judging.ticket("NL"), work)  # another start judges and opens one
    assert await judging.judge("NL", NOW, ticket, work), "the break it may have opened is looked for"


# -- what a flood of starts asks the database -------------------------------------------------------


@pytest.fixture
def statements() -> Iterator[list[str]]:
    """Every SQL statement any engine runs during the test."""
    seen: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        seen.append(statement)

    event.listen(Engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(Engine, "before_cursor_execute", record)


async def test_starts_in_one_second_read_the_deny_list_and_judge_the_country_once(
    client_for: Callable[..., httpx.AsyncClient], app: object, db: Sessions, statements: list[str]
) -> None:
    await deny(db, "+31612345678")
    statements.clear()
    for i, phone in enumerate(NL_MOBILES[:10]):
        async with client_for(f"198.51.100.{i + 1}") as client:
            assert (await start_call(client, phone)).status_code == 200
    async with client_for("198.51.100.99") as client:
        assert (await start_call(client, "0612345678")).status_code == 422, "the deny list still holds"
    deny_reads = [s for s in statements if "deny_entries" in s]
    assert len(deny_reads) == 2, "its signature and its entries, once"
    judging = [s for s in statements if "FROM verifications" in s and "ORDER BY verifications.created_at DESC" in s]
    assert len(judging) == 1, "the country was judged once in that second"
    assert calls_placed(app) == 10


async def test_a_refused_start_writes_its_row_and_reads_nothing(
    client_for: Callable[..., httpx.AsyncClient], app: object, statements: list[str]
) -> None:
    async with client_for("203.0.113.66") as flooding:
        for phone in NL_MOBILES[:5]:
            await start_call(flooding, phone)
        statements.clear()
        for phone in NL_MOBILES[5:25]:
            assert (await start_call(flooding, phone)).status_code == 429
    assert not [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(statements) <= 20, "at most its attempts row each"
