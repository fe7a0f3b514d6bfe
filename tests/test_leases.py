"""Leases on a verification row, as two processes (two Leases) on one real database see them."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import update

from tests.support import FakeClock, verifications
from webapp.leases import LeaseBusy, Leases
from webapp.models import Verification

ID = "v-lease-test"


@pytest.fixture
async def row(db, clock: FakeClock) -> str:
    """One pending verification to take turns on."""
    now = clock()
    async with db() as session:
        session.add(
            Verification(
                id=ID,
                number="+31612345678",
                country="NL",
                channel="tts",
                status="pending",
                code_attempts=0,
                calls=1,
                ip="203.0.113.10",
                created_at=now,
                last_call_at=now,
                expires_at=now + timedelta(minutes=5),
            )
        )
        await session.commit()
    return ID


async def set_lease(db, owner: str, until) -> None:
    async with db() as session:
        await session.execute(update(Verification).where(Verification.id == ID).values(busy_by=owner, busy_until=until))
        await session.commit()


async def test_a_second_process_waits_until_the_first_gives_the_lease_back(db, clock: FakeClock, row: str) -> None:
    first, second = Leases(db, clock, duration=30), Leases(db, clock, duration=30)
    order: list[str] = []
    inside = asyncio.Event()

    async def hold_first() -> None:
        async with first.hold(row):
            order.append("first in")
            inside.set()
            await asyncio.sleep(0.2)  # a provider call, say
            order.append("first out")

    async def hold_second() -> None:
        await inside.wait()
        async with second.hold(row):
            order.append("second in")

    await asyncio.gather(hold_first(), hold_second())
    assert order == ["first in", "first out", "second in"]
    [verification] = await verifications(db)
    assert (verification.busy_by, verification.busy_until) == (None, None)


async def test_a_lease_held_past_the_wait_is_refused_as_busy(db, clock: FakeClock, row: str) -> None:
    await set_lease(db, "otherprocess", clock() + timedelta(seconds=30))
    with pytest.raises(LeaseBusy):
        async with Leases(db, clock, duration=30, wait=0.1).hold(row):
            pytest.fail("entered a verification another process holds")


async def test_a_lease_whose_process_died_runs_out(db, clock: FakeClock, row: str) -> None:
    await set_lease(db, "deadprocess", clock() + timedelta(seconds=30))
    clock.advance(31)
    leases = Leases(db, clock, duration=30, wait=0.1)
    async with leases.hold(row):
        [verification] = await verifications(db)
        assert verification.busy_by == leases.owner


async def test_a_process_takes_back_its_own_lease_it_could_not_give_back(db, clock: FakeClock, row: str) -> None:
    leases = Leases(db, clock, duration=30, wait=0.1)
    await set_lease(db, leases.owner, clock() + timedelta(seconds=30))  # the database was away at give-back
    async with leases.hold(row):
        pass


async def test_no_row_means_nothing_to_hold(db, clock: FakeClock) -> None:
    async with Leases(db, clock, duration=30, wait=0.1).hold("no-such-verification"):
        pass
