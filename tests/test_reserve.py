"""Reserving a number for a new call: insert first, expire a stale verification only when the insert meets one."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.support import FakeClock, verifications
from webapp.errors import Refusal
from webapp.phone import number_from_e164
from webapp.verifications import Verifications

NUMBER = number_from_e164("+31612345678")
TIMEOUT = 300


@pytest.fixture
def reserving(db: async_sessionmaker[AsyncSession]) -> tuple[Verifications, FakeClock, list[str]]:
    """Verifications on the test's database, their clock, and the statements they send."""
    clock = FakeClock()
    sent: list[str] = []

    def statement(_conn: Any, _cursor: Any, text: str, *_args: Any) -> None:
        sent.append(text.split(None, 1)[0].upper())

    event.listen(db.kw["bind"].sync_engine, "before_cursor_execute", statement)
    return Verifications(db, clock, TIMEOUT), clock, sent


async def test_a_free_number_is_reserved_with_one_statement(reserving, db) -> None:
    found, _clock, sent = reserving
    await found.reserve(NUMBER, "192.0.2.1")
    assert sent == ["INSERT"]
    assert [v.status for v in await verifications(db)] == ["pending"]


async def test_a_number_whose_code_ran_out_is_taken_over(reserving, db) -> None:
    found, clock, sent = reserving
    await found.reserve(NUMBER, "192.0.2.1")
    clock.advance(TIMEOUT)
    sent.clear()
    await found.reserve(NUMBER, "192.0.2.2")
    assert sent == ["INSERT", "UPDATE", "INSERT"]
    assert [v.status for v in await verifications(db)] == ["expired", "pending"]


async def test_a_live_number_is_refused_with_its_wait(reserving, db) -> None:
    found, clock, _sent = reserving
    await found.reserve(NUMBER, "192.0.2.1")
    clock.advance(100)
    with pytest.raises(Refusal) as refused:
        await found.reserve(NUMBER, "192.0.2.2")
    assert (refused.value.outcome, refused.value.retry_after) == ("blocked_pending", TIMEOUT - 100)
    assert [v.status for v in await verifications(db)] == ["pending"]


async def test_of_starts_at_once_for_a_stale_number_one_wins(reserving, db) -> None:
    found, clock, _sent = reserving
    await found.reserve(NUMBER, "192.0.2.1")
    clock.advance(TIMEOUT + 1)
    results = await asyncio.gather(
        *(found.reserve(NUMBER, f"192.0.2.{n}") for n in range(2, 8)), return_exceptions=True
    )
    assert sum(not isinstance(result, Exception) for result in results) == 1
    assert {result.outcome for result in results if isinstance(result, Refusal)} == {"blocked_pending"}
    assert sorted(v.status for v in await verifications(db)) == ["expired", "pending"]
