"""aiosqlite, one trip to its thread per statement: what SQLAlchemy gets back is what the stock adapter gives."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiosqlite.core
import pytest
from sqlalchemy import insert, select, text, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from webapp.db import create_engine
from webapp.models import Attempt, Verification

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    made = create_engine(database_url, serving=True)
    yield made
    await made.dispose()


@pytest.fixture
def trips(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every call queued for an aiosqlite thread, as it is queued."""
    queued: list[Any] = []
    original = aiosqlite.core.Connection._execute

    async def counted(connection: Any, fn: Any, *args: Any, **kwargs: Any) -> Any:
        queued.append(fn)
        return await original(connection, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.core.Connection, "_execute", counted)
    return queued


def row(n: int) -> dict[str, object]:
    return {
        "created_at": datetime(2026, 11, 26, 12, 0, tzinfo=UTC),
        "kind": "start",
        "ip": f"192.0.2.{n}",
        "channel": "tts",
        "outcome": "blocked_ip",
    }


async def test_a_query_with_rows_is_one_trip(engine: AsyncEngine, trips: list[Any]) -> None:
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))  # the connection made and set up
        trips.clear()
        result = await connection.execute(text("SELECT 1 AS a, 'x' AS b UNION ALL SELECT 2, 'y'"))
        assert len(trips) == 1
        assert [tuple(r) for r in result] == [(1, "x"), (2, "y")] and list(result.keys()) == ["a", "b"]


async def test_writes_report_rowcount_lastrowid_and_returning(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        inserted = await connection.execute(insert(Attempt.__table__).values(row(1)))
        assert inserted.rowcount == 1 and inserted.inserted_primary_key == (1,)
        returned = await connection.execute(insert(Attempt.__table__).values(row(2)).returning(Attempt.__table__.c.id))
        assert returned.scalar_one() == 2
        many = await connection.execute(insert(Attempt.__table__), [row(n) for n in range(3, 8)])
        assert many.rowcount == 5
        changed = await connection.execute(update(Attempt.__table__).where(Attempt.__table__.c.id > 5).values(count=3))
        assert changed.rowcount == 2
    async with engine.connect() as connection:
        assert (
            await connection.execute(select(Attempt.__table__.c.count).order_by(Attempt.__table__.c.id))
        ).scalars().all() == [1, 1, 1, 1, 1, 3, 3]


async def test_errors_are_sqlalchemys_as_before(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        with pytest.raises(OperationalError):
            await connection.execute(text("SELECT * FROM no_such_table"))
    with pytest.raises(IntegrityError):
        async with engine.begin() as connection:
            await connection.execute(insert(Attempt.__table__).values(**row(1), verification_id="no-such"))


async def test_streamed_results_keep_working(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        await connection.execute(insert(Attempt.__table__), [row(n) for n in range(1, 11)])
    async with engine.connect() as connection:
        streamed = await connection.stream(select(Attempt.__table__.c.ip).order_by(Attempt.__table__.c.id))
        assert [ip async for ip in streamed.scalars()] == [f"192.0.2.{n}" for n in range(1, 11)]
        assert (await connection.scalar(select(Verification.id).limit(1))) is None


async def test_a_read_ends_without_a_trip_and_a_write_still_commits(engine: AsyncEngine, trips: list[Any]) -> None:
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))
        trips.clear()
        await connection.execute(select(Attempt.__table__.c.id))
        await connection.rollback()
        assert len(trips) == 1, "the SELECT only: no transaction was open to roll back"
        await connection.execute(insert(Attempt.__table__).values(row(1)))
        await connection.commit()
        assert len(trips) == 3
    async with engine.connect() as connection:
        assert (await connection.execute(select(Attempt.__table__.c.ip))).scalars().all() == ["192.0.2.1"]
