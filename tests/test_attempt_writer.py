"""The attempts writer: rows committed in batches before their requests return, and a flood folded into one row."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event, func, select
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.support import NL_MOBILES, OPERATOR, attempts, outcomes, start_call, text_of
from webapp.attempt_writer import AttemptWriter, NotWritten
from webapp.db import STORAGE_ERRORS, create_engine, create_sessionmaker
from webapp.models import Attempt

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)

Sessions = async_sessionmaker[AsyncSession]


def refusal(seconds: float = 0, *, ip: str = "192.0.2.7", outcome: str = "blocked_ip", **fields: Any) -> Attempt:
    """A row as AttemptLog.row makes it, `seconds` after NOW."""
    return Attempt(
        created_at=NOW + timedelta(seconds=seconds),
        kind="start",
        ip=ip,
        channel="tts",
        outcome=outcome,
        count=1,
        **fields,
    )


@pytest.fixture
async def writer(db: Sessions) -> AsyncIterator[AttemptWriter]:
    """A running writer on the test's database, folding within 60 s."""
    made = AttemptWriter(db, fold_seconds=60)
    task = asyncio.create_task(made.run())
    await asyncio.sleep(0)
    yield made
    await made.stop()
    task.cancel()


async def stored(db: Sessions) -> list[tuple[str, str, int]]:
    """(outcome, ip, count) of every row, oldest first."""
    return [(row.outcome, row.ip, row.count) for row in await attempts(db)]


async def test_rows_written_at_once_share_a_commit(writer: AttemptWriter, db: Sessions) -> None:
    commits: list[object] = []
    event.listen(db.kw["bind"].sync_engine, "commit", commits.append)
    await asyncio.gather(*(writer.write(refusal(ip=f"192.0.2.{n}")) for n in range(1, 51)))
    assert len(await attempts(db)) == 50
    assert len(commits) < 10, f"{len(commits)} commits for 50 rows"


async def test_a_row_is_committed_when_its_write_returns(writer: AttemptWriter, database_url: str) -> None:
    await writer.write(refusal())
    other = create_engine(database_url)  # another engine: only what is committed is seen
    try:
        async with create_sessionmaker(other)() as session:
            assert await session.scalar(select(func.count()).select_from(Attempt)) == 1
    finally:
        await other.dispose()


async def test_identical_refusals_are_one_row_counting_every_request(writer: AttemptWriter, db: Sessions) -> None:
    for n in range(5):
        await writer.write(refusal(n))
    await asyncio.gather(*(writer.write(refusal(10)) for _ in range(7)))  # some in one batch, folded there
    assert await stored(db) == [("blocked_ip", "192.0.2.7", 12)]


async def test_refusals_that_differ_are_rows_of_their_own(writer: AttemptWriter, db: Sessions) -> None:
    await writer.write(refusal(ip="192.0.2.7"))
    await writer.write(refusal(ip="192.0.2.8"))
    await writer.write(refusal(outcome="blocked_global"))
    await writer.write(refusal(number="+31612345678"))
    await writer.write(refusal(ip="192.0.2.7"))
    assert sorted(await stored(db)) == [
        ("blocked_global", "192.0.2.7", 1),
        ("blocked_ip", "192.0.2.7", 1),
        ("blocked_ip", "192.0.2.7", 2),
        ("blocked_ip", "192.0.2.8", 1),
    ]


async def test_an_ipv6_network_folds_as_the_limits_count_it(writer: AttemptWriter, db: Sessions) -> None:
    for host in range(1, 4):
        await writer.write(refusal(ip=f"2001:db8:1:2::{host}"))
    await writer.write(refusal(ip="2001:db8:1:3::1"))
    assert await stored(db) == [("blocked_ip", "2001:db8:1:2::1", 3), ("blocked_ip", "2001:db8:1:3::1", 1)]


async def test_allowed_outcomes_are_never_folded(writer: AttemptWriter, db: Sessions) -> None:
    for _ in range(3):
        await writer.write(refusal(outcome="reused"))
    assert await stored(db) == [("reused", "192.0.2.7", 1)] * 3


async def test_a_refusal_past_the_window_starts_a_new_row(writer: AttemptWriter, db: Sessions) -> None:
    await writer.write(refusal(0))
    await writer.write(refusal(59.9))
    await writer.write(refusal(60))
    await writer.write(refusal(61))
    assert await stored(db) == [("blocked_ip", "192.0.2.7", 2), ("blocked_ip", "192.0.2.7", 2)]


async def test_fold_seconds_zero_writes_a_row_per_request(db: Sessions) -> None:
    unfolding = AttemptWriter(db, fold_seconds=0)
    for _ in range(3):
        await unfolding.write(refusal())
    assert await stored(db) == [("blocked_ip", "192.0.2.7", 1)] * 3


async def test_a_row_the_database_refuses_fails_only_its_own_request(writer: AttemptWriter, db: Sessions) -> None:
    good = [writer.write(refusal(ip=f"192.0.2.{n}")) for n in range(1, 6)]
    bad = writer.write(refusal(ip="192.0.2.99", verification_id="no-such-verification"))  # a foreign key broken
    results = await asyncio.gather(*good, bad, return_exceptions=True)
    assert results[:5] == [None] * 5
    assert isinstance(results[5], NotWritten) and isinstance(results[5], STORAGE_ERRORS)
    assert sorted(ip for _outcome, ip, _count in await stored(db)) == [f"192.0.2.{n}" for n in range(1, 6)]


async def test_stop_commits_what_is_queued_and_later_rows_commit_themselves(db: Sessions) -> None:
    made = AttemptWriter(db)
    task = asyncio.create_task(made.run())
    await asyncio.sleep(0)
    queued = [asyncio.create_task(made.write(refusal(ip=f"192.0.2.{n}"))) for n in range(1, 21)]
    await asyncio.sleep(0)  # the rows are handed over
    await made.stop()
    task.cancel()
    await asyncio.gather(*queued)
    await made.write(refusal(ip="192.0.2.200"))  # the task is gone: the row commits itself
    assert len(await attempts(db)) == 21


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_database_that_is_away_fails_the_batch_as_a_storage_error(database_url: str) -> None:
    engine = create_engine(database_url, serving=True)
    made = AttemptWriter(create_sessionmaker(engine))
    task = asyncio.create_task(made.run())
    path = Path(make_url(database_url).database or "")
    try:
        await made.write(refusal())
        path.rename(path.with_suffix(".away"))  # noqa: ASYNC240 - the point: the file goes away under the writer
        results = await asyncio.gather(
            *(made.write(refusal(ip=f"192.0.2.{n}")) for n in range(1, 4)), return_exceptions=True
        )
        assert all(isinstance(result, NotWritten) for result in results), results
        path.with_suffix(".away").rename(path)
        await made.write(refusal(ip="192.0.2.50"))  # back: the writer goes on
    finally:
        await made.stop()
        task.cancel()
        await engine.dispose()


# -- through the app --------------------------------------------------------------------------------------


FLOOD = {"limit_start_per_ip": "2/minute"}


@pytest.mark.parametrize("settings_changes", [FLOOD])
async def test_a_flood_of_refused_starts_is_one_row_and_every_request_is_counted(
    client: httpx.AsyncClient, client_for: Callable[..., httpx.AsyncClient], db: Sessions
) -> None:
    statuses = [(await start_call(client, phone)).status_code for phone in NL_MOBILES[:12]]
    assert statuses == [200, 200] + [429] * 10
    assert (await outcomes(db)).count("blocked_ip") == 10
    assert [(row.outcome, row.count) for row in await attempts(db) if row.outcome == "blocked_ip"] == [
        ("blocked_ip", 10)
    ]
    async with client_for("192.0.2.50", auth=OPERATOR) as operator:
        listing = text_of((await operator.get("/admin/")).text)
        summary = text_of((await operator.get("/admin/summary")).text)
        exported = list(csv.DictReader(io.StringIO((await operator.get("/admin/attempts.csv")).text)))
    assert "blocked ip ×10" in listing
    assert "blocked ip 10" in summary
    assert [(r["outcome"], r["count"]) for r in exported if r["outcome"] == "blocked_ip"] == [("blocked_ip", "10")]


@pytest.mark.parametrize("settings_changes", [{**FLOOD, "attempts_fold_seconds": 0}])
async def test_attempts_fold_seconds_zero_keeps_a_row_per_refusal(client: httpx.AsyncClient, db: Sessions) -> None:
    for phone in NL_MOBILES[:5]:
        await start_call(client, phone)
    assert [row.count for row in await attempts(db) if row.outcome == "blocked_ip"] == [1, 1, 1]


async def test_the_apps_refusals_are_committed_in_batches(
    client_for: Callable[..., httpx.AsyncClient], db: Sessions
) -> None:
    commits: list[object] = []
    count = commits.append  # one bound method, to remove the listener by
    event.listen(Engine, "commit", count)  # every engine's, the app's own among them
    try:

        async def refused(n: int) -> int:
            async with client_for(f"198.51.100.{n}") as person:
                return (await start_call(person, f"not a number {n}")).status_code

        statuses = await asyncio.gather(*(refused(n) for n in range(1, 31)))
    finally:
        event.remove(Engine, "commit", count)
    assert statuses == [422] * 30
    assert (await outcomes(db)).count("invalid_number") == 30
    assert len(commits) < 15, f"{len(commits)} commits for 30 rows: the lifespan's writer is not batching"
