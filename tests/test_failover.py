"""Failover between providers, over real HTTP: `PROVIDERS=messagebird,twilio` against the sandbox under uvicorn.

Both providers have credentials and point at one standalone sandbox on a
loopback port (both APIs at the same URL), so the app is not in sandbox mode:
its real clients meet real TCP. The sandbox is made to misbehave per API
(`SandboxState.outages`), or MessageBird is pointed at a port nothing listens
on. Calls are counted where they are placed: the sandbox's `GET /_sandbox/calls`,
each with its `api`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest
from starlette.datastructures import Secret
from starlette.types import ASGIApp, Receive, Scope, Send

from tests.support import NL_MOBILES, FakeClock, attempts, free_port, served_in_thread, start_call, verifications
from webapp.provider.sandbox import CUT, HANG, SandboxState, create_sandbox_app

ACCOUNT = "AC" + "1" * 32
SERVICE = "VA" + "2" * 32


class Requests:
    """The sandbox app, keeping the path of every request it is sent."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.paths: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.paths.append(scope["path"])
        await self.app(scope, receive, send)

    def to(self, api: str) -> int:
        """How many requests reached `api`'s paths."""
        prefix = "/v2/" if api == "twilio" else "/verify"
        return sum(1 for path in self.paths if path.startswith(prefix))


@pytest.fixture
def state(clock: FakeClock) -> SandboxState:
    """The standalone sandbox's memory, on the test's clock; its hang waits 2 s."""
    return SandboxState(clock=clock, hang_seconds=2)


@pytest.fixture
def requests(state: SandboxState) -> Requests:
    return Requests(create_sandbox_app(state))


@pytest.fixture
def sandbox_url(requests: Requests) -> Iterator[str]:
    """The sandbox under uvicorn on a free loopback port."""
    with served_in_thread(requests) as url:
        yield url


@pytest.fixture
def messagebird_url(request: pytest.FixtureRequest, sandbox_url: str) -> str:
    """Where MessageBird is reached: the sandbox, or (param "closed") a port nothing listens on."""
    if getattr(request, "param", None) == "closed":
        return f"http://127.0.0.1:{free_port()}"
    return sandbox_url


@pytest.fixture
def more_changes() -> dict[str, object]:
    """Settings a test changes on top of these: `@pytest.mark.parametrize("more_changes", [{...}])`."""
    return {}


@pytest.fixture
def settings_changes(sandbox_url: str, messagebird_url: str, more_changes: dict[str, object]) -> dict[str, object]:
    """Both providers configured, MessageBird first, both at the sandbox (not sandbox mode)."""
    return {
        "providers": ("messagebird", "twilio"),
        "messagebird_api_key": Secret("test_key"),
        "messagebird_base_url": messagebird_url,
        "twilio_account_sid": ACCOUNT,
        "twilio_auth_token": Secret("test-token"),
        "twilio_verify_service_sid": SERVICE,
        "twilio_base_url": sandbox_url,
        "cookie_secure": False,
        **more_changes,
    }


def calls_at(sandbox_url: str) -> list[dict[str, str]]:
    """The calls the sandbox placed, newest first, as its own `GET /_sandbox/calls` lists them."""
    response = httpx.get(f"{sandbox_url}/_sandbox/calls", timeout=5)
    assert response.status_code == 200
    return response.json()


async def providers_health(client_for: Callable[..., httpx.AsyncClient]) -> dict[str, str]:
    """What /healthz says of each provider."""
    async with client_for() as client:
        return (await client.get("/healthz")).json()["providers"]


# -- a first provider that proves it placed nothing -----------------------------------------------


@pytest.mark.parametrize("messagebird_url", ["closed"], indirect=True)
async def test_a_refused_connection_at_the_first_places_exactly_one_call_at_the_second(
    client: httpx.AsyncClient, sandbox_url: str, requests: Requests, db
) -> None:
    response = await start_call(client, NL_MOBILES[0])

    assert response.status_code == 200 and 'name="code"' in response.text
    (call,) = calls_at(sandbox_url)
    assert call["api"] == "twilio" and call["recipient"] == NL_MOBILES[0].lstrip("+")
    failover, sent = await attempts(db)
    assert (failover.kind, failover.outcome, failover.provider) == ("start", "provider_failover", "messagebird")
    assert "ConnectError" in (failover.reason or "")
    assert (sent.outcome, sent.provider, sent.provider_ref) == ("sent", "twilio", call["id"])
    (verification,) = await verifications(db)
    assert (verification.provider, verification.provider_ref) == ("twilio", call["id"])


@pytest.mark.parametrize("status", [401, 403, 429, 500, 503])
async def test_an_answer_that_proves_nothing_was_placed_fails_over(
    client: httpx.AsyncClient, state: SandboxState, sandbox_url: str, requests: Requests, db, status: int
) -> None:
    state.outages["messagebird"] = status

    response = await start_call(client, NL_MOBILES[0])

    assert response.status_code == 200 and 'name="code"' in response.text
    assert [call["api"] for call in calls_at(sandbox_url)] == ["twilio"]
    assert requests.to("messagebird") == 1 and requests.to("twilio") == 1
    rows = await attempts(db)
    assert [(row.outcome, row.provider) for row in rows] == [("provider_failover", "messagebird"), ("sent", "twilio")]
    assert rows[0].provider_latency_ms is not None


async def test_the_code_of_a_failed_over_call_is_checked_at_the_provider_that_placed_it(
    client: httpx.AsyncClient, state: SandboxState, sandbox_url: str, requests: Requests, db
) -> None:
    state.outages["messagebird"] = 503
    await start_call(client, NL_MOBILES[0])
    state.outages.clear()  # MessageBird is back, but the call is Twilio's
    (call,) = calls_at(sandbox_url)

    response = await client.post("/confirm", data={"code": call["token"], "call": "1"}, headers={"HX-Request": "true"})

    assert response.status_code == 200, response.text
    assert "verified" in response.text.lower()
    assert state.verifications[call["id"]].status == "approved"
    assert requests.to("messagebird") == 1, "only the failed create went to MessageBird"
    assert [(row.outcome, row.provider) for row in await attempts(db)][-1] == ("verified", "twilio")


async def test_call_me_again_goes_to_the_provider_that_placed_the_call(
    client: httpx.AsyncClient, state: SandboxState, sandbox_url: str, clock: FakeClock, db
) -> None:
    state.outages["messagebird"] = 503
    await start_call(client, NL_MOBILES[0])
    state.outages.clear()
    clock.advance(31)

    response = await client.post("/resend", headers={"HX-Request": "true"})

    assert response.status_code == 200, response.text
    assert [call["api"] for call in calls_at(sandbox_url)] == ["twilio", "twilio"]
    assert [(row.kind, row.outcome, row.provider) for row in await attempts(db)][-1] == ("resend", "sent", "twilio")


async def test_use_a_different_number_cancels_at_the_provider_that_placed_the_call(
    client: httpx.AsyncClient, state: SandboxState, sandbox_url: str, db
) -> None:
    state.outages["messagebird"] = 503
    await start_call(client, NL_MOBILES[0])
    (call,) = calls_at(sandbox_url)

    await client.post("/restart", headers={"HX-Request": "true"})

    assert state.verifications[call["id"]].status == "canceled"
    assert [(row.kind, row.outcome, row.provider) for row in await attempts(db)][-1] == (
        "cancel",
        "cancelled",
        "twilio",
    )


# -- answers that prove nothing ---------------------------------------------------------------------


@pytest.mark.parametrize("more_changes", [{"provider_deadline": 0.5}])
async def test_a_timeout_at_the_first_places_no_second_call(
    client: httpx.AsyncClient, state: SandboxState, sandbox_url: str, requests: Requests, db
) -> None:
    state.outages["messagebird"] = HANG  # answers after 2 s; the app gives up after 0.5 s

    response = await start_call(client, NL_MOBILES[0])

    assert response.status_code == 503
    assert "place the call. Please try again later." in response.text
    assert calls_at(sandbox_url) == []
    assert requests.to("twilio") == 0, "Twilio was never asked"
    (row,) = await attempts(db)
    assert (row.outcome, row.provider) == ("provider_error", "messagebird")
    assert "TimeoutError" in (row.reason or "")
    (verification,) = await verifications(db)
    assert verification.status == "unplaced"


async def test_an_answer_cut_off_mid_way_places_no_second_call(
    client: httpx.AsyncClient, state: SandboxState, sandbox_url: str, requests: Requests, db
) -> None:
    state.outages["messagebird"] = CUT  # MessageBird places the call, and its answer breaks off

    response = await start_call(client, NL_MOBILES[0])

    assert response.status_code == 503
    assert [call["api"] for call in calls_at(sandbox_url)] == ["messagebird"], "one call, the one that rang"
    assert requests.to("twilio") == 0
    assert [(row.outcome, row.provider) for row in await attempts(db)] == [("provider_error", "messagebird")]


# -- the breaker ----------------------------------------------------------------------------------


@pytest.mark.parametrize("more_changes", [{"provider_breaker_failures": 2, "provider_breaker_seconds": 60}])
async def test_the_breaker_skips_a_failing_provider_then_tries_it_again_once_it_recovered(
    client_for: Callable[..., httpx.AsyncClient],
    state: SandboxState,
    sandbox_url: str,
    requests: Requests,
    clock: FakeClock,
    db,
) -> None:
    state.outages["messagebird"] = 503

    async def start(index: int) -> None:
        async with client_for(f"198.51.100.{index + 1}") as client:
            response = await start_call(client, NL_MOBILES[index])
            assert response.status_code == 200, response.text

    await start(0)
    await start(1)  # the second "unavailable" in a row: MessageBird is skipped from now on
    assert requests.to("messagebird") == 2
    assert await providers_health(client_for) == {"messagebird": "skipped", "twilio": "ok"}
    state.outages.clear()  # it has recovered, but the breaker does not know yet
    await start(2)
    assert requests.to("messagebird") == 2, "skipped: not asked at all"
    clock.advance(59)
    await start(3)
    assert requests.to("messagebird") == 2
    clock.advance(2)
    await start(4)

    assert requests.to("messagebird") == 3
    assert await providers_health(client_for) == {"messagebird": "ok", "twilio": "ok"}
    assert [call["api"] for call in reversed(calls_at(sandbox_url))] == ["twilio"] * 4 + ["messagebird"]
    rows = [(row.outcome, row.provider) for row in await attempts(db)]
    assert rows == [("provider_failover", "messagebird"), ("sent", "twilio")] * 2 + [
        ("sent", "twilio"),
        ("sent", "twilio"),
        ("sent", "messagebird"),
    ]


@pytest.mark.parametrize(
    "more_changes", [{"providers": ("messagebird",), "provider_breaker_failures": 1, "provider_breaker_seconds": 30}]
)
async def test_with_every_provider_skipped_a_start_is_refused_at_once_with_retry_after(
    client_for: Callable[..., httpx.AsyncClient], state: SandboxState, requests: Requests, clock: FakeClock, db
) -> None:
    state.outages["messagebird"] = 503
    async with client_for("198.51.100.1") as client:
        assert (await start_call(client, NL_MOBILES[0])).status_code == 503
    clock.advance(10)

    async with client_for("198.51.100.2") as client:
        response = await start_call(client, NL_MOBILES[1])

    assert response.status_code == 503
    assert response.headers["retry-after"] == "20"
    assert requests.to("messagebird") == 1, "the second start asked no one"
    rows = await attempts(db)
    assert [(row.outcome, row.provider) for row in rows] == [
        ("provider_error", "messagebird"),
        ("provider_error", None),
    ]
    assert rows[1].reason == "every provider skipped (breaker)"


@pytest.mark.parametrize("more_changes", [{"provider_breaker_failures": 1, "provider_breaker_seconds": 30}])
async def test_a_provider_keeps_its_trial_until_a_start_needs_it(
    client_for: Callable[..., httpx.AsyncClient],
    state: SandboxState,
    sandbox_url: str,
    requests: Requests,
    clock: FakeClock,
    db,
) -> None:
    async def start(index: int) -> int:
        async with client_for(f"198.51.100.{index + 1}") as client:
            return (await start_call(client, NL_MOBILES[index])).status_code

    state.outages.update(messagebird=503, twilio=503)
    assert await start(0) == 503  # both fail: both are skipped for 30 s
    state.outages.clear()
    clock.advance(31)
    assert await start(1) == 200  # MessageBird's trial places it; Twilio is not needed, so not tried
    state.outages["messagebird"] = 503
    assert await start(2) == 200  # MessageBird fails again; Twilio's trial is still there

    assert [call["api"] for call in reversed(calls_at(sandbox_url))] == ["messagebird", "twilio"]
    assert requests.to("twilio") == 2
    assert [(row.outcome, row.provider) for row in await attempts(db)] == [
        ("provider_failover", "messagebird"),
        ("provider_error", "twilio"),
        ("sent", "messagebird"),
        ("provider_failover", "messagebird"),
        ("sent", "twilio"),
    ]
