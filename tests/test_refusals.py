"""A refused try spends no counter, and its Retry-After is the real wait: the longest of all that hold.

Limits are those of the `limits` library, several items per setting
("1/30seconds;2/10minutes"); time is the test's clock.
"""

from __future__ import annotations

from collections.abc import Callable
from html import unescape

import httpx
import pytest

from tests.support import NL_MOBILES, FakeClock, calls_placed, outcomes, start_call

NUMBER = "+31612345678"


async def call_and_give_up(
    client_for: Callable[..., httpx.AsyncClient], ip: str, phone: str = NUMBER
) -> httpx.Response:
    """A start from `ip`, then "Use a different number", so the next start meets the counters, not the live call."""
    async with client_for(ip) as client:
        response = await start_call(client, phone)
        await client.post("/restart", headers={"HX-Request": "true"})
    return response


def retry_after(response: httpx.Response) -> int:
    assert response.status_code == 429, response.text
    return int(response.headers["retry-after"])


# -- per number ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("settings_changes", [{"limit_start_per_number": "1/30seconds;2/10minutes"}])
async def test_retry_after_is_the_longest_wait_of_the_full_limits(client_for, clock: FakeClock) -> None:
    await call_and_give_up(client_for, "198.51.100.1")
    clock.advance(31)
    await call_and_give_up(client_for, "198.51.100.2")
    clock.advance(1)
    response = await call_and_give_up(client_for, "198.51.100.3")
    assert retry_after(response) == 600 - 32, "both items are full: the 10 minutes decide, not the 30 seconds"
    assert "Too many calls to this number. Try again in 10 minutes." in response.text


@pytest.mark.parametrize("settings_changes", [{"limit_start_per_number": "1/30seconds;2/10minutes"}])
async def test_a_refused_try_does_not_use_up_the_numbers_other_limits(client_for, app, clock: FakeClock, db) -> None:
    await call_and_give_up(client_for, "198.51.100.1")
    clock.advance(31)
    await call_and_give_up(client_for, "198.51.100.2")
    clock.advance(31)
    assert retry_after(await call_and_give_up(client_for, "198.51.100.3")) == 600 - 62
    clock.advance(8)
    response = await call_and_give_up(client_for, "198.51.100.4")
    assert retry_after(response) == 600 - 70, "the refused try 8 s ago took no 30-second slot"
    assert calls_placed(app) == 2
    assert [o for o in await outcomes(db) if o != "cancelled"] == ["sent", "sent", "blocked_number", "blocked_number"]


async def test_a_number_in_use_says_when_it_can_really_be_called_again(
    client: httpx.AsyncClient, client_for, clock: FakeClock, settings, db
) -> None:
    """Its live call's code runs out in 5 minutes, but its 3 calls in 10 minutes hold for 9."""
    await start_call(client, NUMBER)
    for _ in range(2):
        clock.advance(31)
        assert (await client.post("/resend", headers={"HX-Request": "true"})).status_code == 200
    clock.advance(8)
    async with client_for("198.51.100.7") as other:
        response = await start_call(other, NUMBER)
    assert retry_after(response) == 600 - 70
    assert "A call to this number is already in progress. Try again in 9 minutes." in response.text
    assert (await outcomes(db))[-1] == "blocked_pending"


# -- overall and per country ------------------------------------------------------------------------------


@pytest.mark.parametrize("settings_changes", [{"limit_calls_global": "1/minute"}])
async def test_a_try_refused_by_the_global_ceiling_spends_nothing_of_the_numbers(
    client_for, clock: FakeClock, db
) -> None:
    assert (await call_and_give_up(client_for, "198.51.100.1", NL_MOBILES[0])).status_code == 200
    for second in (1, 2):
        clock.advance(1)
        response = await call_and_give_up(client_for, "198.51.100.2")
        assert retry_after(response) == 60 - second
        assert "too many calls right now" in unescape(response.text)
    clock.advance(59)
    assert (await call_and_give_up(client_for, "198.51.100.2")).status_code == 200
    assert [o for o in await outcomes(db) if o != "cancelled"] == ["sent", "blocked_global", "blocked_global", "sent"]


@pytest.mark.parametrize("settings_changes", [{"limit_calls_global": "2/minute", "limit_calls_per_country": "1/hour"}])
async def test_a_try_refused_by_the_countrys_ceiling_spends_nothing_of_the_global_one(client_for, clock, db) -> None:
    assert (await call_and_give_up(client_for, "198.51.100.1", NL_MOBILES[0])).status_code == 200
    response = await call_and_give_up(client_for, "198.51.100.2", NL_MOBILES[1])
    assert retry_after(response) == 3600
    async with client_for("198.51.100.3") as belgian:
        assert (await start_call(belgian, "+32 450 00 12 34")).status_code == 200, "one call of two this minute so far"
    assert [o for o in await outcomes(db) if o != "cancelled"] == ["sent", "blocked_global", "sent"]


# -- per client IP ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("settings_changes", [{"limit_start_per_ip": "2/minute;3/hour"}])
async def test_a_refused_try_does_not_use_up_the_ips_other_limits(
    client: httpx.AsyncClient, clock: FakeClock, db
) -> None:
    for phone in NL_MOBILES[:2]:
        assert (await start_call(client, phone)).status_code == 200
    clock.advance(61)
    assert (await start_call(client, NL_MOBILES[2])).status_code == 200
    clock.advance(1)
    assert retry_after(await start_call(client, NL_MOBILES[3])) == 3600 - 62
    clock.advance(1)
    response = await start_call(client, NL_MOBILES[4])
    assert retry_after(response) == 3600 - 63, "the refused try a second ago took no slot of the minute"
    assert "Try again in 59 minutes." in response.text
    assert (await outcomes(db)).count("blocked_ip") == 2


@pytest.mark.parametrize("settings_changes", [{"limit_check_per_ip": "2/minute;3/hour"}])
async def test_a_refused_check_does_not_use_up_the_ips_other_limits(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    await start_call(client, NUMBER)

    async def check() -> httpx.Response:
        return await client.post("/confirm", data={"code": "1"}, headers={"HX-Request": "true"})

    for _ in range(2):
        assert (await check()).status_code == 422  # not a code: refused locally, but counted
    clock.advance(61)
    assert (await check()).status_code == 422
    clock.advance(1)
    assert retry_after(await check()) == 3600 - 62
    clock.advance(1)
    assert retry_after(await check()) == 3600 - 63
