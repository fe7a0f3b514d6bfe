"""The MessageBird client: against the sandbox over real HTTP, and against a fake far side.

The sandbox tests run it under uvicorn on a loopback port, in a thread with its
own event loop, so the client meets real TCP: connection errors, a server that
hangs, and the deadline that cuts it. The `httpx.MockTransport` tests feed the
client the answers a sandbox never gives: broken JSON, HTML error pages, odd
status codes.
"""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import timedelta

import httpx
import pytest

from tests.support import FakeClock, FarSide, Handler, always, served_in_thread
from webapp.errors import (
    InvalidParameter,
    InvalidToken,
    NotFound,
    ProviderError,
    ProviderUnauthorized,
    ProviderUnavailable,
    TokenExpired,
    TokenProcessed,
)
from webapp.provider import CALL, CallOptions
from webapp.provider.messagebird import MessageBird
from webapp.provider.sandbox import SandboxState, create_sandbox_app

RECIPIENT = "+31612345678"
KEY = "test-key"
OPTIONS = CallOptions(template="Your code is %token, once more: %token.", token_length=8, max_attempts=3, timeout=120)


# --- the sandbox under uvicorn ---------------------------------------------------


@pytest.fixture
def state(clock: FakeClock) -> SandboxState:
    """Sandbox state on the test's fake clock; the hang trigger waits 2 s."""
    return SandboxState(clock=clock, hang_seconds=2)


@pytest.fixture
def sandbox_url(state: SandboxState) -> Iterator[str]:
    """The sandbox served by uvicorn on a free loopback port, in a thread of its own."""
    with served_in_thread(create_sandbox_app(state)) as url:
        yield url


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    """A plain httpx client, as the app's lifespan makes one."""
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
def messagebird(http: httpx.AsyncClient, sandbox_url: str) -> MessageBird:
    """The client pointed at the sandbox, with a test access key."""
    return MessageBird(http, KEY, sandbox_url, deadline=5)


def token_of(state: SandboxState, ref: str) -> str:
    """The code the sandbox "spoke" for verification `ref`."""
    (call,) = [call for call in state.calls() if call["id"] == ref]
    return call["token"]


def wrong(token: str) -> str:
    """A code of the same length that is not `token`."""
    return "".join("1" if digit != "1" else "2" for digit in token)


async def test_create_places_a_tts_call(messagebird: MessageBird, state: SandboxState, clock: FakeClock) -> None:
    created = await messagebird.create(RECIPIENT, "tts", OPTIONS)

    assert created.status == "sent"
    assert created.id
    assert created.recipient == "31612345678"
    assert created.created == clock.now.replace(microsecond=0)
    assert created.valid_until == created.created + timedelta(seconds=OPTIONS.timeout)
    (call,) = state.calls()
    assert call["id"] == created.id
    assert call["recipient"] == "31612345678"
    assert call["type"] == "tts"
    assert call["body"] == f"Your code is {call['token']}, once more: {call['token']}."


async def test_create_sends_token_length_and_max_attempts(messagebird: MessageBird, state: SandboxState) -> None:
    created = await messagebird.create(RECIPIENT, "tts", OPTIONS)

    kept = state.verifications[created.id]
    assert len(kept.token) == OPTIONS.token_length
    assert kept.max_attempts == OPTIONS.max_attempts
    # The sandbox only validates language and voice; the MockTransport test
    # below asserts they are in the body.


async def test_check_with_the_right_token_verifies(messagebird: MessageBird, state: SandboxState) -> None:
    created = await messagebird.create(RECIPIENT, "tts", OPTIONS)

    checked = await messagebird.check(created.id, token_of(state, created.id))

    assert checked.status == "verified"
    assert checked.id == created.id


async def test_check_with_a_wrong_token_raises_invalid_token(messagebird: MessageBird, state: SandboxState) -> None:
    created = await messagebird.create(RECIPIENT, "tts", OPTIONS)

    with pytest.raises(InvalidToken) as caught:
        await messagebird.check(created.id, wrong(token_of(state, created.id)))

    assert caught.value.status_code == 422
    assert caught.value.parameter == "token"


async def test_check_after_max_attempts_raises_token_processed(messagebird: MessageBird, state: SandboxState) -> None:
    created = await messagebird.create(RECIPIENT, "tts", OPTIONS)
    token = token_of(state, created.id)
    for _ in range(OPTIONS.max_attempts):
        with pytest.raises(InvalidToken):
            await messagebird.check(created.id, wrong(token))

    with pytest.raises(TokenProcessed):
        await messagebird.check(created.id, token)


async def test_check_of_an_unknown_id_raises_not_found(messagebird: MessageBird) -> None:
    with pytest.raises(NotFound) as caught:
        await messagebird.check("0" * 32, "123456")

    assert caught.value.status_code == 404


async def test_fetch_reads_the_status_without_checking_a_code(messagebird: MessageBird, state: SandboxState) -> None:
    created = await messagebird.create(RECIPIENT, "tts", OPTIONS)
    assert (await messagebird.fetch(created.id)).status == "sent"
    await messagebird.check(created.id, token_of(state, created.id))
    assert (await messagebird.fetch(created.id)).status == "verified"
    with pytest.raises(NotFound):
        await messagebird.fetch("0" * 32)


async def test_check_after_cancel_raises_not_found(messagebird: MessageBird, state: SandboxState) -> None:
    created = await messagebird.create(RECIPIENT, "tts", OPTIONS)

    assert await messagebird.cancel(created.id) is None

    with pytest.raises(NotFound):
        await messagebird.check(created.id, token_of(state, created.id))


async def test_check_after_the_timeout_raises_token_expired(
    messagebird: MessageBird, state: SandboxState, clock: FakeClock
) -> None:
    created = await messagebird.create(RECIPIENT, "tts", OPTIONS)
    clock.advance(OPTIONS.timeout + 1)

    with pytest.raises(TokenExpired):
        await messagebird.check(created.id, token_of(state, created.id))


async def test_check_with_an_empty_token_answers_sent_without_raising(
    messagebird: MessageBird, state: SandboxState
) -> None:
    # MessageBird answers an empty token with 200 and the object unchanged, so
    # "no exception" does not mean "verified": the flow must read `status`.
    created = await messagebird.create(RECIPIENT, "tts", OPTIONS)

    checked = await messagebird.check(created.id, "")

    assert checked.status == "sent"
    assert state.verifications[created.id].status == "sent"


async def test_an_empty_access_key_raises_unauthorized_and_logs_the_setting(
    http: httpx.AsyncClient, sandbox_url: str, state: SandboxState, caplog: pytest.LogCaptureFixture
) -> None:
    messagebird = MessageBird(http, "", sandbox_url, deadline=5)

    with caplog.at_level(logging.ERROR, logger="webapp.provider.messagebird"), pytest.raises(ProviderUnauthorized):
        await messagebird.create(RECIPIENT, "tts", OPTIONS)

    assert any("MESSAGEBIRD_API_KEY" in record.getMessage() for record in caplog.records)
    assert state.calls() == []


async def test_a_server_error_raises_unavailable(messagebird: MessageBird, state: SandboxState) -> None:
    with pytest.raises(ProviderUnavailable):
        await messagebird.create("+31610000500", "tts", OPTIONS)

    assert state.calls() == []


async def test_the_deadline_cuts_a_hanging_provider(
    http: httpx.AsyncClient, sandbox_url: str, state: SandboxState
) -> None:
    messagebird = MessageBird(http, KEY, sandbox_url, deadline=0.3)
    started = time.monotonic()

    with pytest.raises(ProviderUnavailable):
        await messagebird.create("+31610000504", "tts", OPTIONS)

    # Not a benchmark: only that the client gave up before the sandbox answered.
    assert time.monotonic() - started < state.hang_seconds


async def test_a_failed_call_is_created_with_status_failed(messagebird: MessageBird) -> None:
    created = await messagebird.create("+31610000486", "tts", OPTIONS)

    assert created.status == "failed"


async def test_a_refused_connection_raises_unavailable(http: httpx.AsyncClient) -> None:
    # A bound socket that never listens: connecting to its port is refused.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        messagebird = MessageBird(http, KEY, f"http://127.0.0.1:{port}", deadline=5)

        with pytest.raises(ProviderUnavailable):
            await messagebird.create(RECIPIENT, "tts", OPTIONS)


# --- a fake far side ------------------------------------------------------------

VERIFY_OBJECT = {
    "id": "4e213b01155d1e35a9d9571e00162985",
    "recipient": 31612345678,
    "type": "tts",
    "status": "sent",
    "createdDatetime": "2026-11-26T12:00:00+00:00",
    "validUntilDatetime": "2026-11-26T12:05:00+00:00",
}
REF = "4e213b01155d1e35a9d9571e00162985"

Answer = Callable[[Handler], tuple[MessageBird, FarSide]]


@pytest.fixture
async def answer() -> AsyncIterator[Answer]:
    """Make a client whose far side answers with a given handler: `answer(handler)`."""
    clients: list[httpx.AsyncClient] = []

    def make(respond: Handler) -> tuple[MessageBird, FarSide]:
        far_side = FarSide(respond)
        client = httpx.AsyncClient(transport=httpx.MockTransport(far_side))
        clients.append(client)
        return MessageBird(client, KEY, "https://rest.messagebird.test/"), far_side

    yield make
    for client in clients:
        await client.aclose()


def envelope(description: str, code: int = 10, parameter: str | None = None) -> dict:
    return {"errors": [{"code": code, "description": description, "parameter": parameter}]}


async def test_create_posts_the_call_options_as_json(answer: Answer) -> None:
    messagebird, far_side = answer(always(201, json=VERIFY_OBJECT))
    options = CallOptions(language="nl-nl", voice="male", token_length=7, timeout=90, max_attempts=4)

    await messagebird.create(RECIPIENT, "tts", options)

    (request,) = far_side.requests
    assert request.method == "POST"
    assert request.url == "https://rest.messagebird.test/verify"
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.content) == {
        "recipient": "31612345678",
        "type": "tts",
        "template": options.template,
        "tokenLength": 7,
        "timeout": 90,
        "maxAttempts": 4,
        "language": "nl-nl",
        "voice": "male",
    }


@pytest.mark.parametrize(("channel", "type_"), [(CALL, "tts"), ("tts", "tts"), ("sms", "sms")])
async def test_the_call_channel_is_messagebirds_type_tts_and_its_own_types_pass(
    answer: Answer, channel: str, type_: str
) -> None:
    messagebird, far_side = answer(always(201, json=VERIFY_OBJECT))

    await messagebird.create(RECIPIENT, channel, CallOptions())

    (request,) = far_side.requests
    assert json.loads(request.content)["type"] == type_


async def test_create_accepts_200_as_well_as_201(answer: Answer) -> None:
    messagebird, _ = answer(always(200, json=VERIFY_OBJECT))

    created = await messagebird.create(RECIPIENT, "tts", CallOptions())

    assert created.id == REF


async def test_every_request_carries_the_access_key(answer: Answer) -> None:
    messagebird, far_side = answer(always(200, json=VERIFY_OBJECT))

    await messagebird.create(RECIPIENT, "tts", CallOptions())
    await messagebird.check(REF, "123456")

    assert [request.headers["authorization"] for request in far_side.requests] == [f"AccessKey {KEY}"] * 2


async def test_check_sends_the_token_as_a_query_parameter(answer: Answer) -> None:
    messagebird, far_side = answer(always(200, json={**VERIFY_OBJECT, "status": "verified"}))

    checked = await messagebird.check(REF, "123456")

    assert checked.status == "verified"
    (request,) = far_side.requests
    assert request.method == "GET"
    assert request.url.path == f"/verify/{REF}"
    assert dict(request.url.params) == {"token": "123456"}
    assert request.content == b""


async def test_cancel_accepts_204(answer: Answer) -> None:
    messagebird, far_side = answer(always(204))

    assert await messagebird.cancel(REF) is None

    (request,) = far_side.requests
    assert (request.method, request.url.path) == ("DELETE", f"/verify/{REF}")


@pytest.mark.parametrize("ref", ["abc/def", "abc?token=1", "../verify", "abc#x", "abc%2F", ""])
@pytest.mark.parametrize("call", ["check", "cancel"])
async def test_a_ref_that_could_change_the_path_is_refused_without_a_request(
    answer: Answer, ref: str, call: str
) -> None:
    messagebird, far_side = answer(always(200, json=VERIFY_OBJECT))

    sent = messagebird.check(ref, "123456") if call == "check" else messagebird.cancel(ref)
    with pytest.raises(NotFound):
        await sent

    assert far_side.requests == []


async def test_create_is_never_retried(answer: Answer) -> None:
    answers = iter([httpx.Response(500, json=envelope("Internal error", code=99))])
    messagebird, far_side = answer(lambda request: next(answers, httpx.Response(201, json=VERIFY_OBJECT)))

    with pytest.raises(ProviderUnavailable):
        await messagebird.create(RECIPIENT, "tts", CallOptions())

    assert len(far_side.requests) == 1


async def test_malformed_json_with_200_raises_unavailable(answer: Answer) -> None:
    truncated = b'{"id": "abc", "status": '
    messagebird, _ = answer(always(200, content=truncated, headers={"content-type": "application/json"}))

    with pytest.raises(ProviderUnavailable):
        await messagebird.check(REF, "123456")


@pytest.mark.parametrize(
    "body",
    [
        [VERIFY_OBJECT],
        {key: value for key, value in VERIFY_OBJECT.items() if key != "id"},
        {key: value for key, value in VERIFY_OBJECT.items() if key != "status"},
        {**VERIFY_OBJECT, "id": 42},
        {**VERIFY_OBJECT, "status": None},
        {**VERIFY_OBJECT, "createdDatetime": "yesterday"},
        "sent",
        None,
    ],
    ids=["list", "no-id", "no-status", "id-not-a-string", "status-null", "bad-date", "string", "null"],
)
async def test_unexpected_json_with_200_raises_unavailable(answer: Answer, body: object) -> None:
    messagebird, _ = answer(always(200, json=body))

    with pytest.raises(ProviderUnavailable):
        await messagebird.check(REF, "123456")


async def test_an_empty_200_on_create_raises_unavailable(answer: Answer) -> None:
    messagebird, _ = answer(always(200))

    with pytest.raises(ProviderUnavailable):
        await messagebird.create(RECIPIENT, "tts", CallOptions())


@pytest.mark.parametrize("status_code", [500, 502, 503, 504])
async def test_an_html_error_page_raises_unavailable(answer: Answer, status_code: int) -> None:
    page = b"<html><body><h1>Bad Gateway</h1></body></html>"
    messagebird, _ = answer(always(status_code, content=page, headers={"content-type": "text/html"}))

    with pytest.raises(ProviderUnavailable):
        await messagebird.create(RECIPIENT, "tts", CallOptions())


async def test_a_422_invalid_token_envelope_raises_invalid_token(answer: Answer) -> None:
    messagebird, _ = answer(always(422, json=envelope("The token is invalid.", code=10, parameter="token")))

    with pytest.raises(InvalidToken) as caught:
        await messagebird.check(REF, "123456")

    assert (caught.value.status_code, caught.value.code, caught.value.parameter) == (422, 10, "token")
    assert caught.value.description == "The token is invalid."


async def test_a_422_with_another_description_raises_invalid_parameter(answer: Answer) -> None:
    messagebird, _ = answer(always(422, json=envelope("no (correct) recipients found", code=9, parameter="recipient")))

    with pytest.raises(InvalidParameter) as caught:
        await messagebird.create(RECIPIENT, "tts", CallOptions())

    assert (caught.value.code, caught.value.parameter) == (9, "recipient")


async def test_a_404_raises_not_found(answer: Answer) -> None:
    messagebird, _ = answer(always(404, json=envelope("verify object not found", code=20)))

    with pytest.raises(NotFound):
        await messagebird.check(REF, "123456")


async def test_a_404_without_a_body_raises_unavailable(answer: Answer) -> None:
    # The body is read before the status is looked at: a bare 404 (a proxy, a
    # wrong base URL) is "unavailable", not "no such verification".
    messagebird, _ = answer(always(404, content=b"Not Found"))

    with pytest.raises(ProviderUnavailable):
        await messagebird.check(REF, "123456")


async def test_a_400_with_a_body_that_is_not_json_raises_unavailable(answer: Answer) -> None:
    # Without the errors envelope the answer is not MessageBird's: the client
    # treats it like any malformed answer, ProviderUnavailable.
    messagebird, _ = answer(always(400, content=b"Bad Request", headers={"content-type": "text/plain"}))

    with pytest.raises(ProviderUnavailable):
        await messagebird.create(RECIPIENT, "tts", CallOptions())


@pytest.mark.parametrize(
    ("status_code", "kwargs"),
    [
        (302, {"headers": {"location": "https://elsewhere.test/"}}),
        (302, {"json": VERIFY_OBJECT}),
        (418, {"content": b"I'm a teapot"}),
        (418, {"json": {"errors": "teapot"}}),
        (418, {"json": {"errors": [None]}}),
        (304, {}),
        (299, {"json": ["odd"]}),
    ],
    ids=["302-bare", "302-json", "418-text", "418-errors-not-a-list", "418-errors-null-entry", "304", "299-list"],
)
async def test_an_odd_status_code_raises_a_provider_error(answer: Answer, status_code: int, kwargs: dict) -> None:
    messagebird, _ = answer(always(status_code, **kwargs))

    with pytest.raises(ProviderError):
        await messagebird.check(REF, "123456")


async def test_a_read_timeout_raises_unavailable(answer: Answer) -> None:
    def time_out(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    messagebird, _ = answer(time_out)

    with pytest.raises(ProviderUnavailable):
        await messagebird.check(REF, "123456")


async def test_a_401_raises_unauthorized(answer: Answer, caplog: pytest.LogCaptureFixture) -> None:
    messagebird, _ = answer(always(401, json=envelope("Request not allowed (incorrect access_key)", code=2)))

    with caplog.at_level(logging.ERROR, logger="webapp.provider.messagebird"), pytest.raises(ProviderUnauthorized):
        await messagebird.cancel(REF)

    assert "MESSAGEBIRD_API_KEY" in caplog.text


async def test_a_429_from_the_provider_raises_unavailable(answer: Answer) -> None:
    # The provider's own rate limit is temporary: an outage, not a bad parameter.
    messagebird, _ = answer(always(429, json=envelope("Too many requests", code=21)))

    with pytest.raises(ProviderUnavailable):
        await messagebird.check(REF, "123456")


@pytest.mark.parametrize("key", ["clé", "live key", "key\n"])
def test_an_access_key_that_cannot_be_a_header_is_refused_at_once(key: str) -> None:
    with pytest.raises(ValueError, match="printable ASCII"):
        MessageBird(httpx.AsyncClient(), key, "https://rest.messagebird.test")


async def test_a_ref_with_non_ascii_letters_is_refused_without_a_request(answer: Answer) -> None:
    messagebird, far_side = answer(always(200, json=VERIFY_OBJECT))

    with pytest.raises(NotFound):
        await messagebird.check("é²", "123456")
    assert far_side.requests == []


async def test_a_datetime_without_a_zone_is_read_as_utc(answer: Answer) -> None:
    messagebird, _ = answer(always(200, json={**VERIFY_OBJECT, "validUntilDatetime": "2026-11-26T12:05:00"}))

    checked = await messagebird.check(REF, "123456")

    assert checked.valid_until is not None and checked.valid_until.utcoffset() == timedelta(0)
