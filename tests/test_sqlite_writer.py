"""One writer at a time on a SQLite file: writes queue in the process instead of meeting at SQLite's lock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from webapp.db import STORAGE_ERRORS, create_engine, create_sessionmaker
from webapp.models import Attempt
from webapp.sqlite_writer import WriterBusy, writes

ON_SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def attempt(n: int) -> Attempt:
    return Attempt(created_at=NOW, kind="start", ip=f"192.0.2.{n % 250}", channel="tts", outcome="blocked_ip")


def no_busy_wait(engine: AsyncEngine) -> None:
    """SQLite's own busy handler off: a second writer at SQLite's lock fails at once ("database is locked")."""

    @event.listens_for(engine.sync_engine, "connect")
    def impatient(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout=0")
        cursor.close()


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """The serving engine on the test's SQLite file, its writes waiting at most 0.3 s for their turn."""
    made = create_engine(database_url, serving=True, write_wait=0.3, pool_size=8)
    no_busy_wait(made)
    yield made
    await made.dispose()


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return create_sessionmaker(engine)


async def count(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as session:
        return await session.scalar(select(func.count()).select_from(Attempt)) or 0


@ON_SQLITE
async def test_concurrent_writers_take_turns_instead_of_failing_at_the_lock(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async def write(n: int) -> None:
        async with sessions() as session:
            session.add(attempt(n))
            await session.flush()
            await asyncio.sleep(0.001)  # hold the write transaction open across a turn of the loop
            await session.commit()

    await asyncio.gather(*(write(n) for n in range(40)))
    assert await count(sessions) == 40


@ON_SQLITE
async def test_reads_do_not_wait_for_a_write_in_progress(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as writing:
        writing.add(attempt(1))
        await writing.flush()  # the turn is taken, nothing committed
        assert await asyncio.wait_for(count(sessions), 2) == 0
        await writing.commit()
    assert await count(sessions) == 1


@ON_SQLITE
async def test_a_write_that_waits_too_long_fails_as_a_storage_error(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as writing:
        writing.add(attempt(1))
        await writing.flush()
        async with sessions() as second:
            second.add(attempt(2))
            with pytest.raises(WriterBusy) as raised:
                await second.commit()
        assert isinstance(raised.value, STORAGE_ERRORS)  # answered 503 storage_unavailable by the app
        await writing.commit()
    assert await count(sessions) == 1


@ON_SQLITE
async def test_the_turn_passes_on_after_a_rollback_and_after_a_cancelled_wait(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as first:
        first.add(attempt(1))
        await first.flush()

        async def second() -> None:
            async with sessions() as session:
                session.add(attempt(2))
                await session.commit()

        waiting = asyncio.create_task(second())
        await asyncio.sleep(0.05)
        waiting.cancel()  # a request that went away while it queued
        with pytest.raises(asyncio.CancelledError):
            await waiting
        await first.rollback()
    async with sessions() as third:
        third.add(attempt(3))
        await asyncio.wait_for(third.commit(), 1)
    assert await count(sessions) == 1


def test_what_counts_as_a_write() -> None:
    assert writes("INSERT INTO attempts ...") and writes("update x set y = 1") and writes("  DELETE FROM x")
    assert writes("CREATE TABLE x (y)") and writes("SAVEPOINT sa_1")
    assert not writes("SELECT 1") and not writes("\n select * from x") and not writes("PRAGMA table_info(x)")
    assert not writes("")


@ON_SQLITE
async def test_postgresql_engines_keep_the_pre_ping_and_sqlite_ones_do_without(database_url: str) -> None:
    sqlite = create_engine(database_url, serving=True)
    postgresql = create_engine("postgresql+asyncpg://postgres@127.0.0.1:5432/test")
    try:
        assert not sqlite.sync_engine.pool._pre_ping
        assert postgresql.sync_engine.pool._pre_ping
    finally:
        await sqlite.dispose()
        await postgresql.dispose()
