"""The Twilio Verify client: against the sandbox over real HTTP, and against a fake far side.

The sandbox tests serve it with uvicorn on a loopback port, so the client meets
real TCP and Twilio's paths, Basic auth and form bodies as the sandbox reads
them. The `httpx.MockTransport` tests feed it every error body Twilio documents
for the codes the client maps, and the answers a sandbox never gives.
"""

from __future__ import annotations

import base64
import logging
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from urllib.parse import parse_qs

import httpx
import pytest
from starlette.datastructures import Secret

from tests.support import FakeClock, FarSide, Handler, always, served_in_thread
from webapp.errors import (
    AttemptsExhausted,
    InvalidParameter,
    InvalidToken,
    NotFound,
    ProviderUnauthorized,
    ProviderUnavailable,
    RecipientLimited,
    TokenProcessed,
)
from webapp.provider import CALL, CallOptions
from webapp.provider.sandbox import (
    TRIGGER_CALL_FAILS,
    TRIGGER_HANG,
    TRIGGER_SERVER_ERROR,
    SandboxState,
    create_sandbox_app,
)
from webapp.provider.twilio import Twilio, twilio_locale
from webapp.settings import Settings

RECIPIENT = "+31612345678"
ACCOUNT = "AC" + "1" * 32
TOKEN = "test-auth-token"
SERVICE = "VA" + "2" * 32
OPTIONS = CallOptions()


# --- the sandbox under uvicorn ---------------------------------------------------


@pytest.fixture
def state(clock: FakeClock) -> SandboxState:
    """Sandbox state on the test's fake clock; the hang trigger waits 2 s."""
    return SandboxState(clock=clock, hang_seconds=2)


@pytest.fixture
def sandbox_url(state: SandboxState) -> Iterator[str]:
    """The sandbox served by uvicorn on a free loopback port."""
    with served_in_thread(create_sandbox_app(state)) as url:
        yield url


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    """A plain httpx client, as the app's lifespan makes one."""
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
def twilio(http: httpx.AsyncClient, sandbox_url: str) -> Twilio:
    """The client pointed at the sandbox, with test credentials."""
    return Twilio(http, ACCOUNT, TOKEN, SERVICE, sandbox_url, deadline=5)


def token_of(state: SandboxState, ref: str) -> str:
    """The code the sandbox "spoke" for verification `ref`."""
    return state.verifications[ref].token


def wrong(token: str) -> str:
    """A code of the same length that is not `token`."""
    return "".join("1" if digit != "1" else "2" for digit in token)


async def test_create_places_a_call_through_the_twilio_api(
    twilio: Twilio, state: SandboxState, clock: FakeClock
) -> None:
    created = await twilio.create(RECIPIENT, CALL, OPTIONS)

    assert created.status == "sent"
    assert created.id.startswith("VE") and len(created.id) == 34
    assert created.recipient == RECIPIENT
    assert created.created == clock.now.replace(microsecond=0)
    assert created.valid_until is None
    (call,) = state.calls()
    assert call["api"] == "twilio"
    assert call["id"] == created.id
    assert call["recipient"] == "31612345678"
    assert call["type"] == "tts"
    assert len(call["token"]) == 6 and call["token"] in call["body"]


async def test_create_sends_the_language_as_twilios_locale(twilio: Twilio, state: SandboxState) -> None:
    created = await twilio.create(RECIPIENT, CALL, CallOptions(language="en-gb"))

    assert state.verifications[created.id].locale == "en-GB"  # type: ignore[attr-defined]


async def test_check_with_the_right_code_is_verified(twilio: Twilio, state: SandboxState) -> None:
    created = await twilio.create(RECIPIENT, CALL, OPTIONS)

    checked = await twilio.check(created.id, token_of(state, created.id))

    assert checked.status == "verified"
    assert checked.id == created.id


async def test_check_with_a_wrong_code_raises_invalid_token(twilio: Twilio, state: SandboxState) -> None:
    created = await twilio.create(RECIPIENT, CALL, OPTIONS)

    with pytest.raises(InvalidToken):
        await twilio.check(created.id, wrong(token_of(state, created.id)))
    assert (await twilio.fetch(created.id)).status == "sent"


async def test_the_fifth_wrong_code_fails_the_verification(twilio: Twilio, state: SandboxState) -> None:
    created = await twilio.create(RECIPIENT, CALL, OPTIONS)
    code = wrong(token_of(state, created.id))
    for _ in range(4):
        with pytest.raises(InvalidToken):
            await twilio.check(created.id, code)

    assert (await twilio.check(created.id, code)).status == "failed"
    assert (await twilio.fetch(created.id)).status == "failed"


async def test_a_check_after_max_attempts_raises_attempts_exhausted(twilio: Twilio, state: SandboxState) -> None:
    created = await twilio.create(RECIPIENT, CALL, OPTIONS)
    code = wrong(token_of(state, created.id))
    for _ in range(4):
        with pytest.raises(InvalidToken):
            await twilio.check(created.id, code)
    await twilio.check(created.id, code)

    with pytest.raises(AttemptsExhausted) as raised:
        await twilio.check(created.id, token_of(state, created.id))
    assert raised.value.code == 60202
    assert isinstance(raised.value, TokenProcessed)  # the flow asks how it ended, as for MessageBird


async def test_a_check_after_approval_raises_not_found(twilio: Twilio, state: SandboxState) -> None:
    created = await twilio.create(RECIPIENT, CALL, OPTIONS)
    await twilio.check(created.id, token_of(state, created.id))

    with pytest.raises(NotFound) as raised:
        await twilio.check(created.id, token_of(state, created.id))
    assert raised.value.code == 20404


async def test_a_check_after_ten_minutes_raises_not_found(
    twilio: Twilio, state: SandboxState, clock: FakeClock
) -> None:
    created = await twilio.create(RECIPIENT, CALL, OPTIONS)
    clock.advance(600)

    with pytest.raises(NotFound):
        await twilio.check(created.id, token_of(state, created.id))


async def test_cancel_leaves_a_canceled_verification_that_checks_cannot_find(
    twilio: Twilio, state: SandboxState
) -> None:
    created = await twilio.create(RECIPIENT, CALL, OPTIONS)

    await twilio.cancel(created.id)

    assert (await twilio.fetch(created.id)).status == "deleted"
    with pytest.raises(NotFound):
        await twilio.check(created.id, token_of(state, created.id))
    assert state.calls()[0]["status"] == "deleted"


async def test_a_sixth_call_to_a_waiting_number_raises_recipient_limited(twilio: Twilio, state: SandboxState) -> None:
    first = await twilio.create(RECIPIENT, CALL, OPTIONS)
    for _ in range(4):
        assert (await twilio.create(RECIPIENT, CALL, OPTIONS)).id == first.id

    with pytest.raises(RecipientLimited) as raised:
        await twilio.create(RECIPIENT, CALL, OPTIONS)
    assert raised.value.code == 60203
    assert len(state.calls()) == 5


async def test_a_number_without_plus_raises_invalid_parameter_naming_the_recipient(
    twilio: Twilio, state: SandboxState
) -> None:
    with pytest.raises(InvalidParameter) as raised:
        await twilio.create("31612345678", CALL, OPTIONS)
    assert raised.value.code == 60200
    assert raised.value.parameter == "recipient"
    assert state.calls() == []


async def test_wrong_credentials_raise_unauthorized_and_log_the_settings(
    http: httpx.AsyncClient, sandbox_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    twilio = Twilio(http, "", "", SERVICE, sandbox_url)

    with caplog.at_level(logging.ERROR), pytest.raises(ProviderUnauthorized):
        await twilio.create(RECIPIENT, CALL, OPTIONS)
    assert "TWILIO_ACCOUNT_SID" in caplog.text


async def test_a_server_error_raises_unavailable(twilio: Twilio, state: SandboxState) -> None:
    with pytest.raises(ProviderUnavailable):
        await twilio.create("+" + TRIGGER_SERVER_ERROR, CALL, OPTIONS)
    assert state.calls() == []


async def test_the_deadline_cuts_a_hanging_provider(
    http: httpx.AsyncClient, sandbox_url: str, state: SandboxState
) -> None:
    twilio = Twilio(http, ACCOUNT, TOKEN, SERVICE, sandbox_url, deadline=0.3)
    started = time.monotonic()

    with pytest.raises(ProviderUnavailable):
        await twilio.create("+" + TRIGGER_HANG, CALL, OPTIONS)
    assert time.monotonic() - started < state.hang_seconds


async def test_a_failed_call_is_created_with_status_failed(twilio: Twilio) -> None:
    created = await twilio.create("+" + TRIGGER_CALL_FAILS, CALL, OPTIONS)

    assert created.status == "failed"


async def test_a_refused_connection_raises_unavailable(http: httpx.AsyncClient) -> None:
    # A bound socket that never listens: connecting to its port is refused.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as closed:
        closed.bind(("127.0.0.1", 0))
        twilio = Twilio(http, ACCOUNT, TOKEN, SERVICE, f"http://127.0.0.1:{closed.getsockname()[1]}")
        with pytest.raises(ProviderUnavailable):
            await twilio.create(RECIPIENT, CALL, OPTIONS)


# --- a fake far side ------------------------------------------------------------

REF = "VE" + "3" * 32
BASE = "https://verify.twilio.test"
VERIFICATION = {
    "sid": REF,
    "service_sid": SERVICE,
    "account_sid": ACCOUNT,
    "to": RECIPIENT,
    "channel": "call",
    "status": "pending",
    "valid": False,
    "date_created": "2026-12-01T10:00:00Z",
    "date_updated": "2026-12-01T10:00:00Z",
}

Answer = Callable[[Handler], tuple[Twilio, FarSide]]


@pytest.fixture
async def answer() -> AsyncIterator[Answer]:
    """Make a client whose far side answers with a given handler: `answer(handler)`."""
    clients: list[httpx.AsyncClient] = []

    def make(respond: Handler) -> tuple[Twilio, FarSide]:
        far_side = FarSide(respond)
        client = httpx.AsyncClient(transport=httpx.MockTransport(far_side))
        clients.append(client)
        return Twilio(client, ACCOUNT, TOKEN, SERVICE, BASE + "/"), far_side

    yield make
    for client in clients:
        await client.aclose()


def twilio_error(code: int, message: str, status: int) -> Handler:
    """Twilio's error body, as its error pages document it."""
    body = {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    return always(status, json=body)


def form_of(request: httpx.Request) -> dict[str, str]:
    return {key: value for key, (value,) in parse_qs(request.content.decode()).items()}


async def test_create_posts_to_call_and_locale_form_encoded(answer: Answer) -> None:
    twilio, far_side = answer(always(201, json=VERIFICATION))

    created = await twilio.create(RECIPIENT, CALL, CallOptions(language="nl-nl"))

    (request,) = far_side.requests
    assert request.method == "POST"
    assert str(request.url) == f"{BASE}/v2/Services/{SERVICE}/Verifications"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert form_of(request) == {"To": RECIPIENT, "Channel": "call", "Locale": "nl"}
    assert created.id == REF and created.status == "sent"


async def test_every_request_carries_basic_auth(answer: Answer) -> None:
    twilio, far_side = answer(always(200, json=VERIFICATION))

    await twilio.fetch(REF)

    (request,) = far_side.requests
    assert request.headers["authorization"] == "Basic " + base64.b64encode(f"{ACCOUNT}:{TOKEN}".encode()).decode()


async def test_check_posts_the_verification_sid_and_code(answer: Answer) -> None:
    twilio, far_side = answer(always(200, json={**VERIFICATION, "status": "approved", "valid": True}))

    checked = await twilio.check(REF, "123456")

    (request,) = far_side.requests
    assert str(request.url) == f"{BASE}/v2/Services/{SERVICE}/VerificationCheck"
    assert form_of(request) == {"VerificationSid": REF, "Code": "123456"}
    assert checked.status == "verified"


async def test_valid_true_without_approved_is_not_verified(answer: Answer) -> None:
    twilio, _ = answer(always(200, json={**VERIFICATION, "status": "canceled", "valid": True}))

    assert (await twilio.check(REF, "123456")).status == "deleted"


async def test_cancel_posts_status_canceled(answer: Answer) -> None:
    twilio, far_side = answer(always(200, json={**VERIFICATION, "status": "canceled"}))

    await twilio.cancel(REF)

    (request,) = far_side.requests
    assert request.method == "POST"
    assert str(request.url) == f"{BASE}/v2/Services/{SERVICE}/Verifications/{REF}"
    assert form_of(request) == {"Status": "canceled"}


async def test_fetch_gets_the_verification(answer: Answer) -> None:
    twilio, far_side = answer(always(200, json={**VERIFICATION, "status": "max_attempts_reached"}))

    fetched = await twilio.fetch(REF)

    (request,) = far_side.requests
    assert request.method == "GET" and str(request.url) == f"{BASE}/v2/Services/{SERVICE}/Verifications/{REF}"
    assert fetched.status == "failed"


@pytest.mark.parametrize("ref", ["", "../Verifications", "VE" + "3" * 31, "VE" + "g" * 32, "VA" + "3" * 32])
async def test_a_ref_that_is_not_a_verification_sid_is_refused_without_a_request(answer: Answer, ref: str) -> None:
    twilio, far_side = answer(always(200, json=VERIFICATION))

    with pytest.raises(NotFound):
        await twilio.check(ref, "123456")
    assert far_side.requests == []


async def test_create_is_never_retried(answer: Answer) -> None:
    twilio, far_side = answer(always(503, text="busy"))

    with pytest.raises(ProviderUnavailable):
        await twilio.create(RECIPIENT, CALL, OPTIONS)
    assert len(far_side.requests) == 1


async def test_20003_raises_unauthorized(answer: Answer) -> None:
    twilio, _ = answer(twilio_error(20003, "Authenticate", 401))

    with pytest.raises(ProviderUnauthorized):
        await twilio.create(RECIPIENT, CALL, OPTIONS)


async def test_a_401_without_a_body_raises_unauthorized(answer: Answer) -> None:
    twilio, _ = answer(always(401))

    with pytest.raises(ProviderUnauthorized):
        await twilio.fetch(REF)


async def test_a_403_for_a_closed_account_raises_unauthorized(answer: Answer) -> None:
    twilio, _ = answer(twilio_error(20403, "403 Forbidden", 403))

    with pytest.raises(ProviderUnauthorized):
        await twilio.create(RECIPIENT, CALL, OPTIONS)


async def test_20404_raises_not_found(answer: Answer) -> None:
    twilio, _ = answer(
        twilio_error(20404, f"The requested resource /Services/{SERVICE}/VerificationCheck was not found", 404)
    )

    with pytest.raises(NotFound) as raised:
        await twilio.check(REF, "123456")
    assert raised.value.code == 20404 and raised.value.status_code == 404


async def test_a_404_to_a_create_logs_the_service_setting(answer: Answer, caplog: pytest.LogCaptureFixture) -> None:
    twilio, _ = answer(
        twilio_error(20404, f"The requested resource /Services/{SERVICE}/Verifications was not found", 404)
    )

    with caplog.at_level(logging.ERROR), pytest.raises(NotFound):
        await twilio.create(RECIPIENT, CALL, OPTIONS)
    assert "TWILIO_VERIFY_SERVICE_SID" in caplog.text


@pytest.mark.parametrize(
    ("message", "parameter"),
    [("Invalid parameter: To", "recipient"), ("Invalid parameter `Locale`: xx", "Locale"), ("Invalid parameter", None)],
)
async def test_60200_raises_invalid_parameter_with_its_name(
    answer: Answer, message: str, parameter: str | None
) -> None:
    twilio, _ = answer(twilio_error(60200, message, 400))

    with pytest.raises(InvalidParameter) as raised:
        await twilio.create(RECIPIENT, CALL, OPTIONS)
    assert raised.value.code == 60200 and raised.value.parameter == parameter


async def test_60202_raises_attempts_exhausted(answer: Answer) -> None:
    twilio, _ = answer(twilio_error(60202, "Max check attempts reached", 429))

    with pytest.raises(AttemptsExhausted):
        await twilio.check(REF, "123456")


@pytest.mark.parametrize(
    ("code", "message"),
    [(60203, "Max send attempts reached"), (60212, "Too many concurrent requests for phone number")],
)
async def test_per_number_limits_raise_recipient_limited_not_unavailable(
    answer: Answer, code: int, message: str
) -> None:
    twilio, _ = answer(twilio_error(code, message, 429))

    with pytest.raises(RecipientLimited) as raised:
        await twilio.create(RECIPIENT, CALL, OPTIONS)
    assert raised.value.code == code


async def test_the_accounts_own_429_raises_unavailable(answer: Answer) -> None:
    twilio, _ = answer(twilio_error(20429, "Too Many Requests", 429))

    with pytest.raises(ProviderUnavailable):
        await twilio.create(RECIPIENT, CALL, OPTIONS)


async def test_another_4xx_code_raises_invalid_parameter(answer: Answer) -> None:
    twilio, _ = answer(twilio_error(60205, "SMS is not supported by landline phone number", 400))

    with pytest.raises(InvalidParameter) as raised:
        await twilio.create(RECIPIENT, "sms", OPTIONS)
    assert raised.value.code == 60205


@pytest.mark.parametrize("status_code", [500, 502, 503])
async def test_a_5xx_raises_unavailable(answer: Answer, status_code: int) -> None:
    twilio, _ = answer(twilio_error(20500, "An internal server error has occurred", status_code))

    with pytest.raises(ProviderUnavailable):
        await twilio.create(RECIPIENT, CALL, OPTIONS)


async def test_a_read_timeout_raises_unavailable(answer: Answer) -> None:
    def time_out(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("read timed out", request=request)

    twilio, _ = answer(time_out)

    with pytest.raises(ProviderUnavailable):
        await twilio.create(RECIPIENT, CALL, OPTIONS)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"content": b"{not json"},
        {"json": ["a", "list"]},
        {"json": {"status": "pending"}},
        {"json": {**VERIFICATION, "date_created": "soon"}},
    ],
)
async def test_a_200_that_is_not_a_verification_raises_unavailable(answer: Answer, kwargs: dict) -> None:
    twilio, _ = answer(always(200, **kwargs))

    with pytest.raises(ProviderUnavailable):
        await twilio.fetch(REF)


async def test_a_404_html_page_raises_unavailable(answer: Answer) -> None:
    twilio, _ = answer(always(404, text="<html>not here</html>"))

    with pytest.raises(ProviderUnavailable):
        await twilio.fetch(REF)


async def test_a_channel_twilio_is_not_asked_for_is_refused_without_a_request(answer: Answer) -> None:
    twilio, far_side = answer(always(201, json=VERIFICATION))

    with pytest.raises(ValueError, match="channel 'tts'"):
        await twilio.create(RECIPIENT, "tts", OPTIONS)
    assert far_side.requests == []


@pytest.mark.parametrize(
    ("language", "locale"),
    [
        ("en-gb", "en-GB"),
        ("en-us", "en"),
        ("nl-nl", "nl"),
        ("pt_br", "pt-BR"),
        ("de", "de"),
        ("cy-gb", None),
        ("", None),
    ],
)
def test_the_language_becomes_a_locale_twilio_lists_or_none(language: str, locale: str | None) -> None:
    assert twilio_locale(language) == locale


async def test_the_client_is_built_from_the_settings() -> None:
    settings = Settings(
        twilio_account_sid=ACCOUNT,
        twilio_auth_token=Secret(TOKEN),
        twilio_verify_service_sid=SERVICE,
        twilio_base_url=BASE,
    )
    far_side = FarSide(always(200, json=VERIFICATION))
    async with httpx.AsyncClient(transport=httpx.MockTransport(far_side)) as client:
        await Twilio.from_settings(client, settings).fetch(REF)

    (request,) = far_side.requests
    assert str(request.url) == f"{BASE}/v2/Services/{SERVICE}/Verifications/{REF}"
    assert request.headers["authorization"] == "Basic " + base64.b64encode(f"{ACCOUNT}:{TOKEN}".encode()).decode()


def test_the_client_needs_every_twilio_setting() -> None:
    with pytest.raises(ValueError, match="TWILIO_AUTH_TOKEN"):
        Twilio.from_settings(httpx.AsyncClient(), Settings())


def test_a_service_sid_that_could_change_the_path_is_refused() -> None:
    with pytest.raises(ValueError, match="VA followed by 32 hex digits"):
        Twilio(httpx.AsyncClient(), ACCOUNT, TOKEN, "VA" + "2" * 32 + "/../x")


# --- the settings -----------------------------------------------------------------

TWILIO_ENV = {
    "PROVIDERS": "twilio",
    "TWILIO_ACCOUNT_SID": ACCOUNT,
    "TWILIO_AUTH_TOKEN": TOKEN,
    "TWILIO_VERIFY_SERVICE_SID": SERVICE,
}


def test_the_twilio_settings_are_read_from_the_environment() -> None:
    settings = Settings.from_env({**TWILIO_ENV, "TWILIO_BASE_URL": "http://127.0.0.1:8001"}, env_file=None)

    assert settings.twilio_configured
    assert settings.twilio_account_sid == ACCOUNT and settings.twilio_verify_service_sid == SERVICE
    assert isinstance(settings.twilio_auth_token, Secret) and str(settings.twilio_auth_token) == TOKEN
    assert TOKEN not in repr(settings)
    assert settings.twilio_base_url == "http://127.0.0.1:8001"


def test_without_twilio_settings_twilio_is_off_and_the_base_url_is_twilios() -> None:
    settings = Settings.from_env({}, env_file=None)

    assert not settings.twilio_configured
    assert settings.twilio_base_url == "https://verify.twilio.com"


def test_an_api_key_sid_is_accepted_as_the_username() -> None:
    assert Settings.from_env({**TWILIO_ENV, "TWILIO_ACCOUNT_SID": "SK" + "4" * 32}, env_file=None).twilio_configured


@pytest.mark.parametrize("left_out", sorted(set(TWILIO_ENV) - {"PROVIDERS"}))
def test_the_twilio_settings_go_together(left_out: str) -> None:
    environ = {name: value for name, value in TWILIO_ENV.items() if name != left_out}

    with pytest.raises(ValueError, match=f"go together: {left_out} missing"):
        Settings.from_env(environ, env_file=None)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("TWILIO_ACCOUNT_SID", "AC123", "TWILIO_ACCOUNT_SID is the Account SID"),
        ("TWILIO_ACCOUNT_SID", "VA" + "1" * 32, "TWILIO_ACCOUNT_SID is the Account SID"),
        ("TWILIO_VERIFY_SERVICE_SID", "MG" + "2" * 32, "TWILIO_VERIFY_SERVICE_SID is the Verify Service's SID"),
        ("TWILIO_BASE_URL", "verify.twilio.com", "TWILIO_BASE_URL must be a URL"),
        ("TWILIO_BASE_URL", "ftp://verify.twilio.com", "TWILIO_BASE_URL must be a URL"),
    ],
)
def test_a_twilio_setting_of_the_wrong_shape_is_refused_by_name(name: str, value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Settings.from_env({**TWILIO_ENV, name: value}, env_file=None)
