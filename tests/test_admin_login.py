"""The operators' login under pressure, on SQLite and PostgreSQL: guesses sent all at once, and the limiter's storage gone.

A password verification is counted by its log line ("failed operator login"),
which is written once per scrypt verification that failed, through the app
over HTTP. "Redis down" is a real Redis client pointed at a port where
nothing listens.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.support import OPERATOR, FakeClock, post_action, row, seed, text_of

REDIS_DOWN = {"ratelimit_storage_url": "redis://127.0.0.1:1"}
LIMIT = 5  # LIMIT_ADMIN_FAILURES' default, 5/minute;20/hour


def verifications_failed(caplog: pytest.LogCaptureFixture) -> int:
    return sum("failed operator login" in record.getMessage() for record in caplog.get_records("call"))


@pytest.mark.parametrize("settings_changes", [{}, REDIS_DOWN], ids=["limiter up", "limiter down"])
async def test_guesses_sent_all_at_once_get_only_the_limits_number_of_verifications(
    client_for, caplog: pytest.LogCaptureFixture
) -> None:
    async with client_for("192.0.2.9", auth=(OPERATOR[0], "guess")) as guesser:
        responses = await asyncio.gather(*(guesser.get("/admin/") for _ in range(40)))
    assert verifications_failed(caplog) == LIMIT
    assert sorted(r.status_code for r in responses) == [401] * LIMIT + [429] * (40 - LIMIT)
    assert all(int(r.headers["retry-after"]) > 0 for r in responses if r.status_code == 429)


async def test_guesses_from_another_address_wait_for_no_one(client_for, caplog: pytest.LogCaptureFixture) -> None:
    async with (
        client_for("192.0.2.9", auth=(OPERATOR[0], "guess")) as guesser,
        client_for("192.0.2.10", auth=OPERATOR) as operator,
    ):
        guesses = [guesser.get("/admin/") for _ in range(20)]
        responses = await asyncio.gather(*guesses, operator.get("/admin/"))
    assert responses[-1].status_code == 200
    assert verifications_failed(caplog) == LIMIT


async def test_the_right_password_sent_all_at_once_gets_in_every_time(client_for) -> None:
    async with client_for("192.0.2.9", auth=OPERATOR) as operator:
        responses = await asyncio.gather(*(operator.get("/admin/deny-list") for _ in range(10)))
    assert [r.status_code for r in responses] == [200] * 10


@pytest.mark.parametrize("settings_changes", [{}, REDIS_DOWN], ids=["limiter up", "limiter down"])
async def test_failed_logins_are_limited_per_ip(client_for, clock: FakeClock) -> None:
    async with client_for("192.0.2.9", auth=(OPERATOR[0], "guess")) as guesser:
        for _ in range(LIMIT):
            assert (await guesser.get("/admin/")).status_code == 401
        refused = await guesser.get("/admin/")
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0
    async with client_for("192.0.2.9", auth=OPERATOR) as same_ip:
        assert (await same_ip.get("/admin/")).status_code == 429, "even the right password waits"
    async with client_for("192.0.2.10", auth=OPERATOR) as other_ip:
        assert (await other_ip.get("/admin/")).status_code == 200
    clock.advance(61)
    async with client_for("192.0.2.9", auth=OPERATOR) as later:
        assert (await later.get("/admin/")).status_code == 200


# -- the limiter's storage down --------------------------------------------------------------------


@pytest.mark.parametrize("settings_changes", [REDIS_DOWN])
async def test_with_the_limiter_down_the_attempts_still_show(operator: httpx.AsyncClient, db, clock: FakeClock) -> None:
    await seed(db, [row(clock, 60, latency=4242)])
    response = await operator.get("/admin/")
    assert response.status_code == 200
    assert "4242 ms" in response.text
    assert (
        "The limiter's storage does not answer: the rate-limit counters can't be shown, and no calls are placed "
        "until it is back."
    ) in text_of(response.text)
    summary = await operator.get("/admin/summary")
    assert summary.status_code == 200 and "1 attempts" in text_of(summary.text)


@pytest.mark.parametrize("settings_changes", [REDIS_DOWN | {"ratelimit_fail_open": True}])
async def test_with_the_limiter_down_and_failing_open_the_page_says_calls_go_unlimited(
    operator: httpx.AsyncClient,
) -> None:
    page = text_of((await operator.get("/admin/")).text)
    assert "calls are placed without limits until it is back" in page


@pytest.mark.parametrize("settings_changes", [REDIS_DOWN])
@pytest.mark.parametrize("path", ["/admin/numbers/+31612345678", "/admin/ips/203.0.113.10"])
async def test_with_the_limiter_down_a_numbers_and_an_ips_page_say_their_counters_are_unavailable(
    operator: httpx.AsyncClient, path: str
) -> None:
    response = await operator.get(path)
    assert response.status_code == 200
    assert "Limits now The counters are unavailable: the limiter's storage does not answer." in text_of(response.text)


async def test_with_the_limiter_up_no_page_says_it_is_down(operator: httpx.AsyncClient) -> None:
    for path in ("/admin/", "/admin/numbers/+31612345678"):
        assert "does not answer" not in (await operator.get(path)).text


@pytest.mark.parametrize("settings_changes", [REDIS_DOWN])
async def test_with_the_limiter_down_an_action_still_works(operator: httpx.AsyncClient) -> None:
    done = await post_action(operator, action="deny", value="+31612345678")
    assert done.status_code == 303 and done.headers["location"] == "/admin/deny-list?done=denied"
    listed = text_of((await operator.get("/admin/deny-list")).text)
    assert "number +31612345678" in listed
