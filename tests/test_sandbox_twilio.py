"""The sandbox speaks Twilio Verify v2 beside MessageBird: resources, limits, errors, triggers."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import anyio
import httpx
import pytest

from tests.support import FakeClock
from webapp.provider.sandbox import (
    TRIGGER_CALL_FAILS,
    TRIGGER_HANG,
    TRIGGER_SERVER_ERROR,
    SandboxState,
    create_sandbox_app,
)

TO = "+31612345678"
SERVICE = "VA" + "a" * 32
OTHER_SERVICE = "VA" + "b" * 32
ACCOUNT = "AC" + "c" * 32
BASIC = httpx.BasicAuth(ACCOUNT, "auth-token")
PATH = f"/v2/Services/{SERVICE}"
TWILIO_DATE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


@pytest.fixture
def state(clock: FakeClock) -> SandboxState:
    """Sandbox state on the fake clock, with a short hang."""
    return SandboxState(clock=clock, hang_seconds=0.05)


@pytest.fixture
async def client(state: SandboxState) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to the sandbox in-process, with Twilio credentials."""
    transport = httpx.ASGITransport(app=create_sandbox_app(state))
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox", auth=BASIC) as c:
        yield c


async def create(client: httpx.AsyncClient, to: str = TO, **params: str) -> httpx.Response:
    return await client.post(f"{PATH}/Verifications", data={"To": to, "Channel": "call", **params})


async def check(client: httpx.AsyncClient, sid: str, code: str) -> httpx.Response:
    return await client.post(f"{PATH}/VerificationCheck", data={"VerificationSid": sid, "Code": code})


def code_of(state: SandboxState, sid: str) -> str:
    return state.verifications[sid].token


def wrong(code: str) -> str:
    return "".join("1" if digit != "1" else "2" for digit in code)


def twilio_error(response: httpx.Response, status: int, code: int) -> str:
    """Assert Twilio's error body with `status` and `code`; its message."""
    assert response.status_code == status
    body = response.json()
    assert body == {
        "code": code,
        "message": body["message"],
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    return body["message"]


async def test_create_answers_201_with_the_verification_resource(client: httpx.AsyncClient, clock: FakeClock) -> None:
    response = await create(client, Locale="en-GB")

    assert response.status_code == 201
    body = response.json()
    assert re.fullmatch(r"VE[0-9a-f]{32}", body["sid"])
    assert body["service_sid"] == SERVICE and body["account_sid"] == ACCOUNT
    assert body["to"] == TO and body["channel"] == "call"
    assert body["status"] == "pending" and body["valid"] is False
    assert body["date_created"] == clock.now.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert TWILIO_DATE.fullmatch(body["date_updated"])
    assert body["url"] == f"http://sandbox{PATH}/Verifications/{body['sid']}"
    [attempt] = body["send_code_attempts"]
    assert attempt["channel"] == "call" and attempt["attempt_sid"].startswith("VL")


async def test_codes_have_six_digits_by_default(client: httpx.AsyncClient, state: SandboxState) -> None:
    sid = (await create(client)).json()["sid"]

    assert re.fullmatch(r"[0-9]{6}", code_of(state, sid))


async def test_the_code_length_is_the_services_setting(clock: FakeClock) -> None:
    state = SandboxState(clock=clock, twilio_code_length=8)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_sandbox_app(state)), base_url="http://sandbox", auth=BASIC
    ) as client:
        sid = (await create(client)).json()["sid"]

    assert len(code_of(state, sid)) == 8


async def test_the_call_is_listed_with_api_twilio(client: httpx.AsyncClient, state: SandboxState) -> None:
    sid = (await create(client)).json()["sid"]

    [call] = (await client.get("/_sandbox/calls")).json()
    assert call["api"] == "twilio"
    assert call["id"] == sid and call["recipient"] == "31612345678" and call["type"] == "tts"
    assert call["token"] == code_of(state, sid) and call["token"] in call["body"]
    assert call["status"] == "sent"


async def test_calls_from_both_apis_are_listed_newest_first(client: httpx.AsyncClient, clock: FakeClock) -> None:
    await client.post(
        "/verify", json={"recipient": "31612345678", "type": "tts"}, headers={"Authorization": "AccessKey k"}, auth=None
    )
    clock.advance(1)
    await create(client, to="+31612345679")

    calls = (await client.get("/_sandbox/calls")).json()
    assert [(call["api"], call["recipient"]) for call in calls] == [
        ("twilio", "31612345679"),
        ("messagebird", "31612345678"),
    ]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "AccessKey k"},
        {"Authorization": "Basic not-base64!"},
        {"Authorization": "Basic " + "QUM6"},
    ],
)
async def test_missing_credentials_are_401_code_20003(
    client: httpx.AsyncClient, state: SandboxState, headers: dict
) -> None:
    client.auth = None  # type: ignore[assignment]

    response = await client.post(f"{PATH}/Verifications", data={"To": TO, "Channel": "call"}, headers=headers)

    assert twilio_error(response, 401, 20003) == "Authenticate"
    assert response.headers["www-authenticate"].startswith("Basic")
    assert state.calls() == []


@pytest.mark.parametrize("channel", ["tts", "whatsapp", "email", "", "CALL"])
async def test_a_channel_other_than_call_or_sms_is_60200(
    client: httpx.AsyncClient, state: SandboxState, channel: str
) -> None:
    response = await create(client, Channel=channel)

    assert twilio_error(response, 400, 60200) == "Invalid parameter: Channel"
    assert state.calls() == []


async def test_an_sms_is_accepted(client: httpx.AsyncClient, state: SandboxState) -> None:
    response = await create(client, Channel="sms")

    assert response.status_code == 201 and response.json()["channel"] == "sms"
    assert state.calls()[0]["type"] == "sms"


@pytest.mark.parametrize("to", ["31612345678", "+0612345678", "+31 6 12345678", "", "+1234567890123456"])
async def test_a_number_not_in_e164_is_60200(client: httpx.AsyncClient, to: str) -> None:
    assert twilio_error(await create(client, to=to), 400, 60200) == "Invalid parameter: To"


async def test_a_json_body_has_no_parameters(client: httpx.AsyncClient) -> None:
    response = await client.post(f"{PATH}/Verifications", json={"To": TO, "Channel": "call"})

    assert twilio_error(response, 400, 60200) == "Invalid parameter: To"


async def test_a_service_sid_of_the_wrong_shape_is_404_code_20404(client: httpx.AsyncClient) -> None:
    response = await client.post("/v2/Services/VA123/Verifications", data={"To": TO, "Channel": "call"})

    assert twilio_error(response, 404, 20404) == "The requested resource /Services/VA123/Verifications was not found"


async def test_the_right_code_approves(client: httpx.AsyncClient, state: SandboxState) -> None:
    sid = (await create(client)).json()["sid"]

    response = await check(client, sid, code_of(state, sid))

    assert response.status_code == 200
    body = response.json()
    assert body["sid"] == sid and body["status"] == "approved" and body["valid"] is True
    assert state.calls()[0]["status"] == "verified"


async def test_a_check_by_number_finds_its_waiting_verification(client: httpx.AsyncClient, state: SandboxState) -> None:
    sid = (await create(client)).json()["sid"]

    response = await client.post(f"{PATH}/VerificationCheck", data={"To": TO, "Code": code_of(state, sid)})

    assert response.json()["status"] == "approved"


async def test_a_wrong_code_leaves_it_pending(client: httpx.AsyncClient, state: SandboxState) -> None:
    sid = (await create(client)).json()["sid"]

    response = await check(client, sid, wrong(code_of(state, sid)))

    assert response.status_code == 200
    assert response.json()["status"] == "pending" and response.json()["valid"] is False


@pytest.mark.parametrize("code", ["123", "12345678901", "12ab56", ""])
async def test_a_code_that_is_not_4_to_10_digits_is_60200(client: httpx.AsyncClient, code: str) -> None:
    sid = (await create(client)).json()["sid"]

    assert twilio_error(await check(client, sid, code), 400, 60200) == "Invalid parameter: Code"


async def test_the_fifth_wrong_code_reaches_max_attempts(client: httpx.AsyncClient, state: SandboxState) -> None:
    sid = (await create(client)).json()["sid"]
    code = wrong(code_of(state, sid))
    statuses = [(await check(client, sid, code)).json()["status"] for _ in range(5)]

    assert statuses == ["pending"] * 4 + ["max_attempts_reached"]
    assert (await client.get(f"{PATH}/Verifications/{sid}")).json()["status"] == "max_attempts_reached"
    assert state.calls()[0]["status"] == "failed"


async def test_a_check_after_max_attempts_is_429_code_60202(client: httpx.AsyncClient, state: SandboxState) -> None:
    sid = (await create(client)).json()["sid"]
    for _ in range(5):
        await check(client, sid, wrong(code_of(state, sid)))

    twilio_error(await check(client, sid, code_of(state, sid)), 429, 60202)


async def test_a_number_at_max_attempts_gets_no_new_verification_until_it_expires(
    client: httpx.AsyncClient, state: SandboxState, clock: FakeClock
) -> None:
    sid = (await create(client)).json()["sid"]
    for _ in range(5):
        await check(client, sid, wrong(code_of(state, sid)))

    twilio_error(await create(client), 429, 60202)
    clock.advance(600)
    assert (await create(client)).json()["sid"] != sid


@pytest.mark.parametrize("gone", ["approved", "expired", "unknown"])
async def test_a_check_on_an_approved_expired_or_unknown_verification_is_404_code_20404(
    client: httpx.AsyncClient, state: SandboxState, clock: FakeClock, gone: str
) -> None:
    sid = (await create(client)).json()["sid"]
    if gone == "approved":
        await check(client, sid, code_of(state, sid))
    elif gone == "expired":
        clock.advance(600)
    else:
        sid = "VE" + "0" * 32

    message = twilio_error(await check(client, sid, "123456"), 404, 20404)
    assert message == f"The requested resource /Services/{SERVICE}/VerificationCheck was not found"
    twilio_error(await client.get(f"{PATH}/Verifications/{sid}"), 404, 20404)


async def test_a_code_lives_ten_minutes(client: httpx.AsyncClient, state: SandboxState, clock: FakeClock) -> None:
    sid = (await create(client)).json()["sid"]
    clock.advance(599)

    assert (await check(client, sid, code_of(state, sid))).json()["status"] == "approved"


async def test_an_expired_call_is_listed_as_expired(
    client: httpx.AsyncClient, state: SandboxState, clock: FakeClock
) -> None:
    await create(client)
    clock.advance(600)

    assert state.calls()[0]["status"] == "expired"


async def test_another_services_verification_is_not_found(client: httpx.AsyncClient, state: SandboxState) -> None:
    sid = (await create(client)).json()["sid"]

    response = await client.post(
        f"/v2/Services/{OTHER_SERVICE}/VerificationCheck", data={"VerificationSid": sid, "Code": code_of(state, sid)}
    )

    twilio_error(response, 404, 20404)


async def test_a_new_create_while_waiting_calls_again_with_the_same_code(
    client: httpx.AsyncClient, state: SandboxState
) -> None:
    first = (await create(client)).json()

    again = (await create(client)).json()

    assert again["sid"] == first["sid"]
    assert len(again["send_code_attempts"]) == 2
    calls = state.calls()
    assert [call["id"] for call in calls] == [first["sid"]] * 2
    assert calls[0]["token"] == calls[1]["token"]


async def test_the_sixth_send_to_a_number_is_429_code_60203(client: httpx.AsyncClient, state: SandboxState) -> None:
    for _ in range(5):
        assert (await create(client)).status_code == 201

    assert twilio_error(await create(client), 429, 60203) == "Max send attempts reached"
    assert len(state.calls()) == 5


async def test_the_send_limit_ends_with_the_verification(
    client: httpx.AsyncClient, state: SandboxState, clock: FakeClock
) -> None:
    for _ in range(5):
        await create(client)
    clock.advance(600)

    assert (await create(client)).status_code == 201


async def test_cancel_answers_canceled_and_frees_the_number(client: httpx.AsyncClient, state: SandboxState) -> None:
    sid = (await create(client)).json()["sid"]

    response = await client.post(f"{PATH}/Verifications/{sid}", data={"Status": "canceled"})

    assert response.status_code == 200 and response.json()["status"] == "canceled"
    assert (await client.get(f"{PATH}/Verifications/{sid}")).json()["status"] == "canceled"
    twilio_error(await check(client, sid, code_of(state, sid)), 404, 20404)
    assert (await create(client)).json()["sid"] != sid
    assert state.calls()[1]["status"] == "deleted"


async def test_an_unknown_status_update_is_60200(client: httpx.AsyncClient) -> None:
    sid = (await create(client)).json()["sid"]

    response = await client.post(f"{PATH}/Verifications/{sid}", data={"Status": "expired"})

    assert twilio_error(response, 400, 60200) == "Invalid parameter: Status"


async def test_trigger_server_error_is_500_with_twilios_body_and_places_no_call(
    client: httpx.AsyncClient, state: SandboxState
) -> None:
    twilio_error(await create(client, to="+" + TRIGGER_SERVER_ERROR), 500, 20500)
    assert state.calls() == []


async def test_trigger_call_fails_answers_status_failed(client: httpx.AsyncClient, state: SandboxState) -> None:
    response = await create(client, to="+" + TRIGGER_CALL_FAILS)

    assert response.status_code == 201 and response.json()["status"] == "failed"
    assert state.calls()[0]["status"] == "failed"


async def test_trigger_hang_answers_500_after_hang_seconds(client: httpx.AsyncClient, state: SandboxState) -> None:
    with anyio.fail_after(5):
        response = await create(client, to="+" + TRIGGER_HANG)

    twilio_error(response, 500, 20500)
    assert state.calls() == []


async def test_trigger_hang_outlasts_a_client_deadline(client: httpx.AsyncClient) -> None:
    with pytest.raises(TimeoutError):
        with anyio.fail_after(0.01):
            await create(client, to="+" + TRIGGER_HANG)


async def test_an_unknown_twilio_path_answers_twilios_404(client: httpx.AsyncClient) -> None:
    twilio_error(await client.get("/v2/Services"), 404, 20404)


async def test_a_wrong_method_answers_405_with_twilios_body(client: httpx.AsyncClient) -> None:
    twilio_error(await client.delete(f"{PATH}/Verifications"), 405, 20004)
