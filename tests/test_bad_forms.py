"""Unreadable forms (400, 413, 415) get an attempts row like every refusal, folded per client and window."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.support import FakeClock, Outage, attempts, call_me

Sessions = async_sessionmaker[AsyncSession]

#: far more starts from one address than a flood test sends
MANY_STARTS = {"limit_start_per_ip": "1000/minute"}
URLENCODED = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture
async def outage(database_url: str) -> AsyncIterator[Outage]:
    """The database's outage, always ended by teardown."""
    trouble = Outage(database_url)
    yield trouble
    await trouble.end()


async def not_utf8(client: httpx.AsyncClient, path: str = "/verify") -> httpx.Response:
    return await client.post(path, content=b"country=NL&phone=\xff\xfe", headers=URLENCODED)


async def rows(db: Sessions) -> list[tuple[str, str, str, int]]:
    return [(row.kind, row.outcome, row.ip, row.count) for row in await attempts(db)]


@pytest.mark.parametrize(
    ("send", "status", "outcome"),
    [
        (not_utf8, 400, "bad_request"),
        (lambda c: c.post("/verify", data={"country": "NL", "phone": "1" * 40_000}), 413, "form_too_large"),
        (lambda c: c.post("/verify", files={"phone": ("a.txt", b"0612345678")}), 415, "form_not_urlencoded"),
    ],
    ids=["400", "413", "415"],
)
async def test_a_bad_form_writes_one_row(
    htmx: httpx.AsyncClient, db: Sessions, send: Callable[..., object], status: int, outcome: str
) -> None:
    response = await send(htmx)  # type: ignore[misc]
    assert response.status_code == status
    assert await rows(db) == [("start", outcome, "203.0.113.10", 1)]


async def test_a_bad_code_form_and_resend_form_name_their_step(htmx: httpx.AsyncClient, db: Sessions) -> None:
    assert (await call_me(htmx)).status_code == 200
    assert (await not_utf8(htmx, "/confirm")).status_code == 400
    assert (await htmx.post("/resend", content=b"x" * 40_000, headers=URLENCODED)).status_code == 413
    assert [(kind, outcome) for kind, outcome, _, _ in await rows(db)] == [
        ("start", "sent"),
        ("check", "bad_request"),
        ("resend", "form_too_large"),
    ]


@pytest.mark.parametrize("settings_changes", [MANY_STARTS])
async def test_a_flood_of_bad_forms_is_one_row_with_its_count(
    client_for: Callable[..., httpx.AsyncClient], db: Sessions, clock: FakeClock
) -> None:
    async with client_for("198.51.100.7") as flooder, client_for("198.51.100.8") as other:
        for _ in range(50):
            assert (await not_utf8(flooder)).status_code == 400
        assert (await not_utf8(other)).status_code == 400
        clock.advance(61)  # the window is over: the next one is a row of its own
        assert (await not_utf8(flooder)).status_code == 400
    assert await rows(db) == [
        ("start", "bad_request", "198.51.100.7", 50),
        ("start", "bad_request", "198.51.100.8", 1),
        ("start", "bad_request", "198.51.100.7", 1),
    ]


async def test_a_database_away_does_not_turn_the_bad_form_into_a_500(
    htmx: httpx.AsyncClient, db: Sessions, outage: Outage
) -> None:
    # The code form: nothing before its form is read asks the database (a start reads the deny list first).
    await outage.begin()
    response = await not_utf8(htmx, "/confirm")
    assert response.status_code == 400 and "not valid UTF-8" in response.text
    await outage.end()
    assert (await not_utf8(htmx, "/confirm")).status_code == 400
    assert await rows(db) == [("check", "bad_request", "203.0.113.10", 1)], "the outage's row is lost, not the 4xx"
