"""The pumping circuit breaker over HTTP, on both databases: what it counts, when and where it stops calls.

Bots "let the calls expire": they never type a code, and the test's clock
moves past the code's life. Calls are counted at the sandbox.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import timedelta
from html import unescape

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from tests.support import NL_MOBILES, FakeClock, calls_placed, outcomes, start_call
from webapp.app import create_app
from webapp.models import CircuitBreak, Verification

#: Valid Dutch mobile numbers, each in a range of its own (+31 6 2000 1234, +31 6 2001 1234, …).
NL_SPREAD = [f"+3162{i:03d}1234" for i in range(60)]
#: The range NL_MOBILES are in, as a break names it.
NL_MOBILES_RANGE = "+3161200"
BOTS = [f"198.51.100.{i}" for i in range(1, 5)]


def round_robin(ips: list[str]) -> Iterator[str]:
    return itertools.cycle(ips)


async def breaks(db) -> list[CircuitBreak]:
    async with db() as session:
        return list((await session.scalars(select(CircuitBreak).order_by(CircuitBreak.id))).all())


async def call_from(client_for: Callable[..., httpx.AsyncClient], ip: str, phone: str) -> httpx.Response:
    async with client_for(ip) as client:
        return await start_call(client, phone)


async def pump(
    client_for, clock: FakeClock, settings, phones: list[str], ips: list[str], *, pace: float = 0, expire: bool = True
) -> list[httpx.Response]:
    """Calls from the bots in turn, `pace` seconds apart; then (with `expire`) their codes run out unanswered."""
    responses = []
    for phone, ip in zip(phones, round_robin(ips), strict=False):  # round_robin never ends
        responses.append(await call_from(client_for, ip, phone))
        clock.advance(pace)
    if expire:
        clock.advance(settings.call.timeout + 1)
    return responses


def stopped(response: httpx.Response) -> bool:
    return response.status_code == 429 and "We can't call" in unescape(response.text)


# -- what counts ---------------------------------------------------------------------------------------


async def test_cancelled_calls_never_trip_the_breaker(client_for, app, clock: FakeClock, db) -> None:
    """The hostile test's recipe: start, then "Use a different number", from four IPs."""
    for phone, ip in zip(NL_MOBILES[:20], round_robin(BOTS), strict=False):
        async with client_for(ip) as client:
            assert (await start_call(client, phone)).status_code == 200
            await client.post("/restart", headers={"HX-Request": "true"})
    clock.advance(3600)
    response = await call_from(client_for, "192.0.2.99", NL_MOBILES[20])
    assert response.status_code == 200, "honest people in the country still get calls"
    assert await breaks(db) == []


@pytest.fixture
def provider_answer() -> dict[str, Callable[[httpx.Request], httpx.Response]]:
    """How the far side answers every request; tests set `provider_answer["create"]`."""
    return {}


@pytest.fixture
async def troubled_client_for(
    settings, clock: FakeClock, provider_answer
) -> AsyncIterator[Callable[..., httpx.AsyncClient]]:
    """Clients (one per IP) of an app whose provider answers as `provider_answer` says."""
    # Looked up on each request: a test swaps provider_answer["create"] midway.
    transport = httpx.MockTransport(lambda request: provider_answer["create"](request))  # noqa: PLW0108
    application = create_app(settings, clock=clock, provider_transport=transport)
    async with LifespanManager(application) as manager:

        def make(ip: str) -> httpx.AsyncClient:
            asgi = httpx.ASGITransport(app=manager.app, client=(ip, 40000))
            return httpx.AsyncClient(transport=asgi, base_url="http://testserver")

        yield make


def server_error(request: httpx.Request) -> httpx.Response:
    return httpx.Response(500, text="upstream trouble")


def timeout(request: httpx.Request) -> httpx.Response:
    raise httpx.ReadTimeout("the provider did not answer", request=request)


def call_failed(request: httpx.Request) -> httpx.Response:
    """The provider accepted the verification, but its call could not be placed."""
    return httpx.Response(200, json={"id": uuid.uuid4().hex, "recipient": 31600000000, "status": "failed"})


@pytest.mark.parametrize("answer", [server_error, timeout, call_failed], ids=["5xx", "timeout", "call failed"])
async def test_calls_the_provider_did_not_place_never_trip_the_breaker(
    troubled_client_for, provider_answer, clock: FakeClock, settings, db, answer
) -> None:
    provider_answer["create"] = answer
    responses = await pump(troubled_client_for, clock, settings, NL_MOBILES[:20], BOTS)
    assert {response.status_code for response in responses} == {503}
    response = await call_from(troubled_client_for, "192.0.2.99", NL_MOBILES[20])
    assert response.status_code == 503 and not stopped(response), "still the provider's trouble, not a break"
    assert "blocked_circuit" not in await outcomes(db)
    assert await breaks(db) == []
    async with db() as session:
        statuses = set((await session.scalars(select(Verification.status))).all())
    assert statuses == {"unplaced"}


async def test_calls_still_waiting_for_their_code_do_not_trip_the_breaker(client_for, app, clock, settings, db) -> None:
    ips = [f"198.51.100.{i}" for i in range(1, 6)]
    await pump(client_for, clock, settings, NL_MOBILES[:25], ips, expire=False)
    assert calls_placed(app) == 25
    assert "blocked_circuit" not in await outcomes(db)


async def test_honest_traffic_keeps_the_breaker_closed(client_for, app, clock: FakeClock, settings, db) -> None:
    """Half the people type their code, half let it expire: far above the 20 % that trips it."""
    for i, (phone, ip) in enumerate(zip(NL_MOBILES[:30], round_robin(BOTS), strict=False)):
        async with client_for(ip) as client:
            assert (await start_call(client, phone)).status_code == 200
            if i % 2 == 0:
                code = app.state.sandbox.calls()[0]["token"]
                await client.post("/confirm", data={"code": code}, headers={"HX-Request": "true"})
        clock.advance(settings.call.timeout + 1)
    assert "blocked_circuit" not in await outcomes(db)


# -- spread ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("settings_changes", [{"limit_start_per_ip": "100/hour"}])
async def test_unanswered_calls_from_one_network_do_not_trip_it(client_for, clock, settings, db) -> None:
    await pump(client_for, clock, settings, NL_MOBILES[:20], ["198.51.100.1"], pace=60)
    assert (await call_from(client_for, "198.51.100.1", NL_MOBILES[20])).status_code == 200
    assert await breaks(db) == []


@pytest.mark.parametrize("settings_changes", [{"limit_start_per_number": "100/hour"}])
async def test_unanswered_calls_to_a_few_numbers_do_not_trip_it(client_for, clock, settings, db) -> None:
    """Someone whose phone is off, trying again and again, is not pumping."""
    for phone, ip in zip(NL_MOBILES[:2] * 10, round_robin(BOTS), strict=False):
        assert (await call_from(client_for, ip, phone)).status_code == 200
        clock.advance(settings.call.timeout + 1)
    assert (await call_from(client_for, BOTS[0], NL_MOBILES[0])).status_code == 200
    assert await breaks(db) == []


# -- where: a range first ---------------------------------------------------------------------------------


async def test_a_pumping_run_into_one_range_is_stopped_within_20_calls(
    client_for, app, clock: FakeClock, settings, db
) -> None:
    bots = round_robin(BOTS)
    for phone in NL_MOBILES:
        response = await call_from(client_for, next(bots), phone)
        if response.status_code != 200:
            break
        clock.advance(settings.call.timeout + 1)  # nobody types the code
    assert stopped(response), response.text
    assert "We can't call this number right now" in unescape(response.text)
    assert int(response.headers["retry-after"]) == settings.circuit_cooloff
    assert calls_placed(app) == settings.circuit_window == 20
    outside = await call_from(client_for, "192.0.2.99", "+31 6 12345678")
    assert outside.status_code == 200, "a number outside the range still gets its call"
    [stop] = await breaks(db)
    assert (stop.country, stop.scope, stop.whole_country) == ("NL", NL_MOBILES_RANGE, False)
    assert (stop.verified_share, stop.window, stop.networks, stop.numbers) == (0.0, 20, 4, 20)


async def test_the_breaks_calls_are_not_judged_again_when_it_ends(client_for, app, clock, settings, db) -> None:
    await pump(client_for, clock, settings, NL_MOBILES[:20], BOTS)
    assert stopped(await call_from(client_for, BOTS[0], NL_MOBILES[20]))
    clock.advance(settings.circuit_cooloff + 1)
    assert (await call_from(client_for, BOTS[0], NL_MOBILES[21])).status_code == 200, "after the cool-off, calls resume"
    assert len(await breaks(db)) == 1


async def test_one_trip_writes_one_break_when_requests_race(client_for, app, clock, settings, db) -> None:
    await pump(client_for, clock, settings, NL_MOBILES[:20], BOTS)
    racers = [call_from(client_for, f"192.0.2.{i}", phone) for i, phone in enumerate(NL_MOBILES[20:30], start=1)]
    responses = await asyncio.gather(*racers)
    assert [stopped(response) for response in responses] == [True] * 10, "no call during the break"
    assert [(b.scope, b.epoch) for b in await breaks(db)] == [(NL_MOBILES_RANGE, 0)]
    assert calls_placed(app) == 20


async def test_the_database_keeps_one_break_per_scope_and_epoch(db, clock: FakeClock) -> None:
    """What settles a race between processes that judged the same calls at once."""

    def trip() -> CircuitBreak:
        return CircuitBreak(
            country="NL",
            scope=NL_MOBILES_RANGE,
            epoch=0,
            opened_at=clock.now,
            until=clock.now + timedelta(hours=1),
            verified_share=0.0,
            window=20,
        )

    async with db() as first, db() as second:
        first.add(trip())
        second.add(trip())
        await first.commit()
        with pytest.raises(IntegrityError):
            await second.commit()
    assert len(await breaks(db)) == 1


# -- where: the whole country, only above its usual volume -------------------------------------------------


async def test_a_pumping_run_spread_across_a_country_with_no_history_stops_it(
    client_for, app, clock: FakeClock, settings, db
) -> None:
    await pump(client_for, clock, settings, NL_SPREAD[:20], BOTS)
    response = await call_from(client_for, "192.0.2.99", "+31 6 12345678")
    assert stopped(response) and "We can't call numbers in this country right now" in unescape(response.text)
    assert (await call_from(client_for, "192.0.2.99", "+32 450 00 12 34")).status_code == 200, (
        "other countries still get calls"
    )
    [stop] = await breaks(db)
    assert (stop.scope, stop.whole_country, stop.window, stop.networks, stop.numbers) == ("NL", True, 20, 4, 20)


async def seed_usual_traffic(db, clock: FakeClock, *, calls: int, over: timedelta) -> None:
    """`calls` placed and verified calls to NL numbers, spread evenly over the time `over` before now."""
    step = over / calls
    async with db() as session:
        for i in range(calls):
            at = clock.now - over + i * step
            session.add(
                Verification(
                    id=f"usual{i}",
                    number=f"+316300{i:05d}",
                    country="NL",
                    channel="tts",
                    provider_ref=f"ref{i}",
                    status="verified",
                    code_attempts=1,
                    calls=1,
                    ip=f"203.0.113.{i % 200}",
                    created_at=at,
                    last_call_at=at,
                    expires_at=at + timedelta(minutes=5),
                    verified_at=at,
                )
            )
        await session.commit()


@pytest.mark.parametrize("settings_changes", [{"circuit_history": 86400}])
async def test_unanswered_calls_at_the_countrys_usual_volume_do_not_stop_it(client_for, clock, settings, db) -> None:
    """Like a provider that stops delivering calls: 20 an hour as ever, none answered."""
    await seed_usual_traffic(db, clock, calls=480, over=timedelta(days=1))
    await pump(client_for, clock, settings, NL_SPREAD[:20], BOTS, pace=180)
    assert (await call_from(client_for, "192.0.2.99", "+31 6 12345678")).status_code == 200
    assert await breaks(db) == []


@pytest.mark.parametrize("settings_changes", [{"circuit_history": 86400}])
async def test_unanswered_calls_well_above_the_countrys_usual_volume_stop_it(client_for, clock, settings, db) -> None:
    await seed_usual_traffic(db, clock, calls=480, over=timedelta(days=1))
    await pump(client_for, clock, settings, NL_SPREAD[:20], BOTS, pace=3)
    assert stopped(await call_from(client_for, "192.0.2.99", "+31 6 12345678"))
    assert [b.scope for b in await breaks(db)] == ["NL"]
