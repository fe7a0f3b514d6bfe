"""The provider list: PROVIDERS read and refused, the breaker on a controlled clock, what proves a call unplaced, sandbox mode serving every listed provider.

What each client makes of an answer is tested against a far side
(`httpx.MockTransport`) for the answers a sandbox never gives, and over real
HTTP for a refused connection and an answer cut off mid-way.
"""

from __future__ import annotations

import csv
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.datastructures import Secret

from tests.support import (
    FakeClock,
    FarSide,
    always,
    attempts,
    free_port,
    served_in_thread,
    spoken_code,
    start_call,
    text_of,
)
from webapp.errors import (
    InvalidParameter,
    ProviderError,
    ProviderRefused,
    ProviderUnauthorized,
    ProviderUnavailable,
    RecipientLimited,
)
from webapp.provider import CALL, CallOptions, Provider
from webapp.provider.breaker import Breaker
from webapp.provider.failover import is_outage, proves_unplaced
from webapp.provider.messagebird import MessageBird
from webapp.provider.sandbox import (
    CUT,
    TRIGGER_MESSAGEBIRD_DOWN,
    TRIGGER_TWILIO_DOWN,
    SandboxState,
    create_sandbox_app,
)
from webapp.provider.twilio import Twilio
from webapp.settings import Settings

ACCOUNT = "AC" + "1" * 32
SERVICE = "VA" + "2" * 32
TWILIO_ENV = {"TWILIO_ACCOUNT_SID": ACCOUNT, "TWILIO_AUTH_TOKEN": "token", "TWILIO_VERIFY_SERVICE_SID": SERVICE}


# -- PROVIDERS ------------------------------------------------------------------------------------


def test_the_default_is_messagebird_alone_in_sandbox_mode() -> None:
    settings = Settings.from_env({}, env_file=None)

    assert settings.providers == ("messagebird",)
    assert settings.sandbox
    assert (settings.provider_breaker_failures, settings.provider_breaker_seconds) == (5, 30)


def test_providers_are_read_in_order_lowercase() -> None:
    settings = Settings.from_env(
        {"PROVIDERS": " Twilio, messagebird ", **TWILIO_ENV, "MESSAGEBIRD_API_KEY": "live_x"}, env_file=None
    )

    assert settings.providers == ("twilio", "messagebird")
    assert not settings.sandbox


def test_listing_both_without_any_credentials_is_sandbox_mode() -> None:
    settings = Settings.from_env({"PROVIDERS": "messagebird,twilio"}, env_file=None)

    assert settings.sandbox and settings.providers == ("messagebird", "twilio")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "PROVIDERS must name at least one provider"),
        (" , ", "PROVIDERS must name at least one provider"),
        ("messagebird,vonage", r"PROVIDERS has unknown providers \['vonage'\]"),
        ("twilio,twilio", "PROVIDERS names a provider twice"),
    ],
)
def test_a_provider_list_that_cannot_work_is_refused(value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Settings.from_env({"PROVIDERS": value}, env_file=None)


@pytest.mark.parametrize(
    ("environ", "missing"),
    [
        ({"PROVIDERS": "messagebird,twilio", "MESSAGEBIRD_API_KEY": "live_x"}, "twilio, but TWILIO_ACCOUNT_SID"),
        ({"PROVIDERS": "messagebird,twilio", **TWILIO_ENV}, "messagebird, but MESSAGEBIRD_API_KEY"),
        # Twilio's credentials without PROVIDERS naming it: not a silent fall back to sandbox mode
        (TWILIO_ENV, "messagebird, but MESSAGEBIRD_API_KEY"),
        ({"PROVIDERS": "twilio", "MESSAGEBIRD_API_KEY": "live_x"}, "twilio, but TWILIO_ACCOUNT_SID"),
    ],
)
def test_a_listed_provider_without_credentials_is_refused_at_start_up_outside_sandbox_mode(
    environ: dict[str, str], missing: str
) -> None:
    with pytest.raises(ValueError, match=f"PROVIDERS lists {missing}"):
        Settings.from_env(environ, env_file=None)


def test_an_unlisted_provider_with_credentials_is_allowed() -> None:
    settings = Settings.from_env({"PROVIDERS": "twilio", **TWILIO_ENV, "MESSAGEBIRD_API_KEY": "live_x"}, env_file=None)

    assert settings.providers == ("twilio",) and not settings.sandbox


@pytest.mark.parametrize(
    ("name", "value"),
    [("PROVIDER_BREAKER_FAILURES", "0"), ("PROVIDER_BREAKER_SECONDS", "0"), ("PROVIDER_BREAKER_SECONDS", "100000")],
)
def test_breaker_settings_out_of_range_are_refused(name: str, value: str) -> None:
    with pytest.raises(ValueError, match=name):
        Settings.from_env({name: value}, env_file=None)


# -- the breaker ----------------------------------------------------------------------------------


def test_the_breaker_opens_after_n_failures_in_a_row_for_m_seconds(clock: FakeClock) -> None:
    breaker = Breaker("messagebird", failures=3, seconds=60, clock=clock)
    for _ in range(2):
        breaker.failed()
    assert breaker.allows() and breaker.wait() is None
    breaker.failed()

    assert not breaker.allows()
    assert breaker.wait() == 60
    clock.advance(59.5)
    assert not breaker.allows() and breaker.wait() == 1


def test_an_answer_resets_the_count(clock: FakeClock) -> None:
    breaker = Breaker("messagebird", failures=2, seconds=60, clock=clock)
    breaker.failed()
    breaker.succeeded()
    breaker.failed()

    assert breaker.allows()


def test_after_the_pause_one_trial_goes_through_and_the_rest_still_skip(clock: FakeClock) -> None:
    breaker = Breaker("messagebird", failures=1, seconds=30, clock=clock)
    breaker.failed()
    clock.advance(30)

    assert breaker.allows(), "the trial"
    assert not breaker.allows(), "while the trial runs, the others skip"
    breaker.failed()
    assert not breaker.allows(), "the trial failed: another pause"
    clock.advance(30)
    assert breaker.allows()
    breaker.succeeded()
    assert breaker.allows() and breaker.allows() and breaker.wait() is None


@pytest.mark.parametrize(
    ("error", "unplaced", "outage"),
    [
        (ProviderRefused("HTTP 503 with its error body"), True, True),
        (ProviderUnauthorized("401"), True, True),
        (ProviderUnavailable("TimeoutError"), False, True),
        (RecipientLimited("60203", status_code=429, code=60203), False, False),
        (InvalidParameter("recipient", status_code=422, parameter="recipient"), False, False),
    ],
)
def test_what_fails_over_and_what_counts_against_the_provider(
    error: ProviderError, unplaced: bool, outage: bool
) -> None:
    assert proves_unplaced(error) is unplaced
    assert is_outage(error) is outage


# -- what each client makes of an answer -------------------------------------------------------------


def clients(transport: httpx.AsyncBaseTransport, base_url: str = "http://provider.test") -> list[Provider]:
    http = httpx.AsyncClient(transport=transport)
    return [
        MessageBird(http, "key", base_url, deadline=2),
        Twilio(http, ACCOUNT, "token", SERVICE, base_url, deadline=2),
    ]


MESSAGEBIRD_500 = {"errors": [{"code": 99, "description": "Internal error", "parameter": None}]}
TWILIO_500 = {"code": 20500, "message": "An internal server error has occurred", "more_info": "", "status": 500}


@pytest.mark.parametrize("provider", [0, 1], ids=["messagebird", "twilio"])
@pytest.mark.parametrize(
    ("answer", "refused"),
    [
        (lambda body: httpx.Response(500, json=body), True),
        (lambda body: httpx.Response(503, json=body), True),
        (lambda body: httpx.Response(429, text="slow down"), True),
        (lambda body: httpx.Response(502, text="<html>Bad Gateway</html>"), False),
        (lambda body: httpx.Response(504, text=""), False),
        (lambda body: httpx.Response(500, json={"unexpected": True}), False),
    ],
    ids=["500-own-body", "503-own-body", "429", "502-gateway-page", "504-empty", "500-other-json"],
)
async def test_a_5xx_proves_nothing_placed_only_in_the_providers_own_error_body(
    provider: int, answer, refused: bool
) -> None:
    body = MESSAGEBIRD_500 if provider == 0 else TWILIO_500
    client = clients(httpx.MockTransport(FarSide(lambda request: answer(body))))[provider]

    with pytest.raises(ProviderUnavailable) as raised:
        await client.create("+31612345678", CALL, CallOptions())

    assert isinstance(raised.value, ProviderRefused) is refused


@pytest.mark.parametrize("provider", [0, 1], ids=["messagebird", "twilio"])
@pytest.mark.parametrize("status", [401, 403])
async def test_401_and_403_are_unauthorized(provider: int, status: int) -> None:
    client = clients(httpx.MockTransport(always(status, json={})))[provider]

    with pytest.raises(ProviderUnauthorized):
        await client.create("+31612345678", CALL, CallOptions())


@pytest.mark.parametrize("provider", [0, 1], ids=["messagebird", "twilio"])
async def test_a_refused_connection_proves_nothing_placed(provider: int) -> None:
    client = clients(httpx.AsyncHTTPTransport(), f"http://127.0.0.1:{free_port()}")[provider]

    with pytest.raises(ProviderRefused, match="ConnectError"):
        await client.create("+31612345678", CALL, CallOptions())


@pytest.mark.parametrize(("provider", "api"), [(0, "messagebird"), (1, "twilio")], ids=["messagebird", "twilio"])
async def test_an_answer_cut_off_over_real_http_proves_nothing(provider: int, api: str, clock: FakeClock) -> None:
    state = SandboxState(clock=clock)
    state.outages[api] = CUT
    with served_in_thread(create_sandbox_app(state)) as url:
        client = clients(httpx.AsyncHTTPTransport(), url)[provider]
        with pytest.raises(ProviderUnavailable, match="RemoteProtocolError") as raised:
            await client.create("+31612345678", CALL, CallOptions())

    assert not isinstance(raised.value, ProviderRefused)
    assert [call["api"] for call in state.calls()] == [api], "the call was placed: failing over would ring twice"


# -- sandbox mode serves every listed provider -----------------------------------------------------------


@pytest.mark.parametrize("settings_changes", [{"providers": ("twilio",)}])
async def test_sandbox_mode_with_twilio_alone_calls_and_checks_through_twilios_api(
    htmx: httpx.AsyncClient, app: Starlette, db
) -> None:
    response = await start_call(htmx, "+31612345678")
    assert response.status_code == 200
    (call,) = app.state.sandbox.calls()
    assert call["api"] == "twilio"

    response = await htmx.post("/confirm", data={"code": spoken_code(app), "call": "1"})

    assert response.status_code == 200 and "verified" in response.text.lower()
    assert [(row.outcome, row.provider) for row in await attempts(db)] == [("sent", "twilio"), ("verified", "twilio")]


@pytest.mark.parametrize("settings_changes", [{"providers": ("twilio",), "call": CallOptions(token_length=8)}])
async def test_the_sandboxs_twilio_service_speaks_codes_as_long_as_the_flow_expects(
    htmx: httpx.AsyncClient, app: Starlette
) -> None:
    await start_call(htmx, "+31612345678")

    assert len(spoken_code(app)) == 8


@pytest.mark.parametrize("settings_changes", [{"providers": ("messagebird", "twilio")}])
async def test_sandbox_mode_fails_over_offline_too(htmx: httpx.AsyncClient, app: Starlette, db) -> None:
    app.state.sandbox.outages["messagebird"] = 500

    response = await start_call(htmx, "+31612345678")

    assert response.status_code == 200
    assert [call["api"] for call in app.state.sandbox.calls()] == ["twilio"]
    assert [(row.outcome, row.provider) for row in await attempts(db)] == [
        ("provider_failover", "messagebird"),
        ("sent", "twilio"),
    ]


@pytest.mark.parametrize(
    ("settings_changes", "trigger", "placed_by"),
    [
        ({"providers": ("messagebird", "twilio")}, TRIGGER_MESSAGEBIRD_DOWN, "twilio"),
        ({"providers": ("twilio", "messagebird")}, TRIGGER_TWILIO_DOWN, "messagebird"),
    ],
)
async def test_a_number_one_api_refuses_fails_over_to_the_other(
    htmx: httpx.AsyncClient, app: Starlette, trigger: str, placed_by: str, db
) -> None:
    response = await start_call(htmx, "+" + trigger)

    assert response.status_code == 200
    assert [call["api"] for call in app.state.sandbox.calls()] == [placed_by]
    assert [row.outcome for row in await attempts(db)] == ["provider_failover", "sent"]


@pytest.mark.parametrize("api", ["messagebird", "twilio"])
async def test_the_down_triggers_are_refused_only_by_their_own_api(api: str, clock: FakeClock) -> None:
    state = SandboxState(clock=clock)
    messagebird, twilio = clients(httpx.ASGITransport(app=create_sandbox_app(state)), "http://sandbox.invalid")
    down, up = (messagebird, twilio) if api == "messagebird" else (twilio, messagebird)
    trigger = TRIGGER_MESSAGEBIRD_DOWN if api == "messagebird" else TRIGGER_TWILIO_DOWN
    with pytest.raises(ProviderRefused, match="503"):
        await down.create("+" + trigger, CALL, CallOptions())
    await up.create("+" + trigger, CALL, CallOptions())

    assert [call["api"] for call in state.calls()] == ["twilio" if api == "messagebird" else "messagebird"]


@pytest.fixture
async def operator_with_rows(
    app: Starlette, htmx: httpx.AsyncClient, operator: httpx.AsyncClient
) -> AsyncIterator[httpx.AsyncClient]:
    """An operator's client, after one start that failed over from MessageBird to Twilio."""
    app.state.sandbox.outages["messagebird"] = 503
    assert (await start_call(htmx, "+31612345678")).status_code == 200
    async with operator:
        yield operator


@pytest.mark.parametrize("settings_changes", [{"providers": ("messagebird", "twilio")}])
async def test_the_attempts_table_shows_and_filters_by_provider(operator_with_rows: httpx.AsyncClient) -> None:
    everything = await operator_with_rows.get("/admin/")
    at_twilio = await operator_with_rows.get("/admin/?provider=twilio")
    refused = await operator_with_rows.get("/admin/?provider=vonage")

    assert "<td>messagebird</td>" in everything.text and "<td>twilio</td>" in everything.text
    assert "provider failover" in everything.text
    assert "<td>twilio</td>" in at_twilio.text and "<td>messagebird</td>" not in at_twilio.text
    assert refused.status_code == 400 and "is not a provider" in refused.text


@pytest.mark.parametrize("settings_changes", [{"providers": ("messagebird", "twilio")}])
async def test_the_csv_names_each_rows_provider(operator_with_rows: httpx.AsyncClient) -> None:
    lines = (await operator_with_rows.get("/admin/attempts.csv")).text.splitlines()

    rows = list(csv.DictReader(lines))
    assert sorted(row["provider"] for row in rows) == ["messagebird", "twilio"]


@pytest.mark.parametrize("settings_changes", [{"providers": ("messagebird", "twilio")}])
async def test_the_summary_counts_by_provider(operator_with_rows: httpx.AsyncClient) -> None:
    summary = await operator_with_rows.get("/admin/summary")

    table = text_of(summary.text.split('class="small providers"', 1)[1].split("</table>", 1)[0])
    assert "Provider Placed Verified Failed over Errors" in table
    assert "messagebird 0 0 1 0" in table and "twilio 1 0 0 0" in table


def test_a_real_key_and_a_sandbox_twilio_do_not_mix() -> None:
    # Both listed, only one with credentials: refused, never half real and half sandbox.
    with pytest.raises(ValueError, match="PROVIDERS lists twilio"):
        Settings(providers=("messagebird", "twilio"), messagebird_api_key=Secret("live_x")).validate()
