"""The sandbox speaks the MessageBird Verify API, errors and triggers included."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import anyio
import httpx
import pytest

from webapp.provider.sandbox import (
    TRIGGER_CALL_FAILS,
    TRIGGER_HANG,
    TRIGGER_SERVER_ERROR,
    SandboxState,
    create_sandbox_app,
)

RECIPIENT = "31612345678"
AUTH = {"Authorization": "AccessKey test_sandbox_key"}


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> FakeClock:
    """A fresh fake clock."""
    return FakeClock()


@pytest.fixture
def state(clock: FakeClock) -> SandboxState:
    """Sandbox state on the fake clock, with a short hang."""
    return SandboxState(clock=clock, hang_seconds=0.05)


@pytest.fixture
async def client(state: SandboxState) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to the sandbox in-process, with an access key."""
    transport = httpx.ASGITransport(app=create_sandbox_app(state))
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox", headers=AUTH) as c:
        yield c


async def create(client: httpx.AsyncClient, **params: object) -> httpx.Response:
    return await client.post("/verify", json={"recipient": RECIPIENT, "type": "tts", **params})


def error_of(response: httpx.Response) -> dict:
    errors = response.json()["errors"]
    assert len(errors) == 1
    return errors[0]


async def test_create_answers_the_verify_object(client: httpx.AsyncClient) -> None:
    response = await create(client, reference="ref1", timeout=60)
    assert response.status_code == 201
    body = response.json()
    assert len(body["id"]) == 32 and int(body["id"], 16) >= 0
    assert body["href"] == f"http://sandbox/verify/{body['id']}"
    assert body["recipient"] == int(RECIPIENT)
    assert body["reference"] == "ref1"
    assert body["status"] == "sent"
    assert body["messages"]["href"].startswith("http://sandbox/voicemessages/")
    assert body["createdDatetime"] == "2024-05-01T12:00:00+00:00"
    assert body["validUntilDatetime"] == "2024-05-01T12:01:00+00:00"


async def test_create_lists_the_call_with_its_token_in_the_spoken_text(client: httpx.AsyncClient) -> None:
    created = (await create(client, template="Your code is %token.", tokenLength=8)).json()
    calls = (await client.get("/_sandbox/calls")).json()
    assert len(calls) == 1
    call = calls[0]
    assert call["id"] == created["id"]
    assert call["recipient"] == RECIPIENT
    assert call["type"] == "tts"
    assert len(call["token"]) == 8 and call["token"].isdigit()
    assert call["body"] == f"Your code is {call['token']}."
    assert call["status"] == "sent"
    assert call["createdDatetime"] == "2024-05-01T12:00:00+00:00"


async def test_create_uses_the_documented_defaults(client: httpx.AsyncClient, state: SandboxState) -> None:
    body = (await client.post("/verify", json={"recipient": RECIPIENT})).json()
    call = state.calls()[0]
    assert call["type"] == "sms"
    assert len(call["token"]) == 6
    assert call["body"] == f"Your code is: {call['token']}"
    assert body["validUntilDatetime"] == "2024-05-01T12:00:30+00:00"


async def test_create_accepts_a_form_encoded_body(client: httpx.AsyncClient, state: SandboxState) -> None:
    response = await client.post("/verify", data={"recipient": "+" + RECIPIENT, "type": "tts", "tokenLength": "7"})
    assert response.status_code == 201
    assert response.json()["recipient"] == int(RECIPIENT)
    assert len(state.calls()[0]["token"]) == 7


async def test_create_accepts_an_integer_recipient(client: httpx.AsyncClient) -> None:
    response = await client.post("/verify", json={"recipient": int(RECIPIENT)})
    assert response.status_code == 201


async def test_missing_access_key_is_401(client: httpx.AsyncClient) -> None:
    response = await client.post("/verify", json={"recipient": RECIPIENT}, headers={"Authorization": ""})
    assert response.status_code == 401
    assert response.json() == {
        "errors": [{"code": 2, "description": "Request not allowed (incorrect access_key)", "parameter": "access_key"}]
    }


async def test_empty_access_key_is_401(client: httpx.AsyncClient, state: SandboxState) -> None:
    response = await client.get("/verify/abc", headers={"Authorization": "AccessKey "})
    assert response.status_code == 401
    assert error_of(response)["code"] == 2


async def test_missing_recipient_is_422_code_9(client: httpx.AsyncClient, state: SandboxState) -> None:
    response = await client.post("/verify", json={"type": "tts"})
    assert response.status_code == 422
    assert error_of(response) == {"code": 9, "description": "no (correct) recipients found", "parameter": "recipient"}
    assert state.calls() == []


async def test_non_numeric_recipient_is_422(client: httpx.AsyncClient) -> None:
    response = await create(client, recipient="31abc")
    assert response.status_code == 422
    assert error_of(response)["code"] == 10
    assert error_of(response)["parameter"] == "recipient"


@pytest.mark.parametrize("length", [5, 11, "six"])
async def test_token_length_out_of_range_is_422(client: httpx.AsyncClient, length: object) -> None:
    response = await create(client, tokenLength=length)
    assert response.status_code == 422
    assert error_of(response)["code"] == 10
    assert error_of(response)["parameter"] == "tokenLength"


@pytest.mark.parametrize("attempts", [0, 11])
async def test_max_attempts_out_of_range_is_422(client: httpx.AsyncClient, attempts: int) -> None:
    response = await create(client, maxAttempts=attempts)
    assert response.status_code == 422
    assert error_of(response)["code"] == 10
    assert error_of(response)["parameter"] == "maxAttempts"


@pytest.mark.parametrize("timeout", [0, -5, "soon", 10**12])
async def test_bad_timeout_is_422(client: httpx.AsyncClient, timeout: object) -> None:
    response = await create(client, timeout=timeout)
    assert response.status_code == 422
    assert error_of(response)["parameter"] == "timeout"


async def test_unknown_type_is_422(client: httpx.AsyncClient) -> None:
    response = await create(client, type="pigeon")
    assert response.status_code == 422
    assert error_of(response)["code"] == 10
    assert error_of(response)["parameter"] == "type"


@pytest.mark.parametrize("content", [b"{not json", b"\xff\xfe", b"[1, 2]", b"[" * 100_000])
async def test_malformed_json_answers_the_errors_envelope(client: httpx.AsyncClient, content: bytes) -> None:
    response = await client.post("/verify", content=content, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert error_of(response)["code"] == 21


async def test_right_token_verifies(client: httpx.AsyncClient, state: SandboxState) -> None:
    created = (await create(client)).json()
    token = state.calls()[0]["token"]
    response = await client.get(f"/verify/{created['id']}", params={"token": token})
    assert response.status_code == 200
    assert response.json()["status"] == "verified"
    assert (await client.get(f"/verify/{created['id']}")).json()["status"] == "verified"
    assert state.calls()[0]["status"] == "verified"


async def test_wrong_token_is_invalid(client: httpx.AsyncClient) -> None:
    created = (await create(client, maxAttempts=3)).json()
    response = await client.get(f"/verify/{created['id']}", params={"token": "0000000"})
    assert response.status_code == 422
    assert error_of(response) == {"code": 10, "description": "The token is invalid.", "parameter": "token"}
    assert (await client.get(f"/verify/{created['id']}")).json()["status"] == "sent"


async def test_wrong_tokens_up_to_max_attempts_fail_the_verification(
    client: httpx.AsyncClient, state: SandboxState
) -> None:
    created = (await create(client, maxAttempts=2)).json()
    token = state.calls()[0]["token"]
    for _ in range(2):
        response = await client.get(f"/verify/{created['id']}", params={"token": "0000000"})
        assert error_of(response)["description"] == "The token is invalid."
    assert (await client.get(f"/verify/{created['id']}")).json()["status"] == "failed"
    response = await client.get(f"/verify/{created['id']}", params={"token": token})
    assert response.status_code == 422
    assert error_of(response)["description"] == "The token has already been processed."


async def test_token_after_validity_has_expired(
    client: httpx.AsyncClient, state: SandboxState, clock: FakeClock
) -> None:
    created = (await create(client, timeout=60)).json()
    token = state.calls()[0]["token"]
    clock.advance(60)
    response = await client.get(f"/verify/{created['id']}", params={"token": token})
    assert response.status_code == 422
    assert error_of(response) == {"code": 10, "description": "The token has expired.", "parameter": "token"}
    assert (await client.get(f"/verify/{created['id']}")).json()["status"] == "expired"


async def test_token_just_before_expiry_verifies(
    client: httpx.AsyncClient, state: SandboxState, clock: FakeClock
) -> None:
    created = (await create(client, timeout=60)).json()
    clock.advance(59)
    response = await client.get(f"/verify/{created['id']}", params={"token": state.calls()[0]["token"]})
    assert response.json()["status"] == "verified"


async def test_verified_token_cannot_be_used_again(client: httpx.AsyncClient, state: SandboxState) -> None:
    created = (await create(client)).json()
    token = state.calls()[0]["token"]
    await client.get(f"/verify/{created['id']}", params={"token": token})
    response = await client.get(f"/verify/{created['id']}", params={"token": token})
    assert response.status_code == 422
    assert error_of(response) == {
        "code": 10,
        "description": "The token has already been processed.",
        "parameter": "token",
    }


async def test_empty_token_answers_200_with_status_sent(client: httpx.AsyncClient) -> None:
    created = (await create(client)).json()
    response = await client.get(f"/verify/{created['id']}", params={"token": ""})
    assert response.status_code == 200
    assert response.json()["status"] == "sent"


async def test_unknown_id_is_404_code_20(client: httpx.AsyncClient) -> None:
    response = await client.get("/verify/" + "0" * 32, params={"token": "123456"})
    assert response.status_code == 404
    assert response.json() == {"errors": [{"code": 20, "description": "verify object not found", "parameter": None}]}


async def test_delete_answers_204_then_404(client: httpx.AsyncClient, state: SandboxState) -> None:
    created = (await create(client)).json()
    response = await client.delete(f"/verify/{created['id']}")
    assert response.status_code == 204
    assert response.content == b""
    assert (await client.get(f"/verify/{created['id']}")).status_code == 404
    assert (await client.delete(f"/verify/{created['id']}")).status_code == 404
    assert state.calls()[0]["status"] == "deleted"


async def test_trigger_server_error_is_500_and_places_no_call(client: httpx.AsyncClient, state: SandboxState) -> None:
    response = await create(client, recipient="+" + TRIGGER_SERVER_ERROR)
    assert response.status_code == 500
    assert error_of(response) == {"code": 99, "description": "Internal error", "parameter": None}
    assert (await client.get("/_sandbox/calls")).json() == []


async def test_trigger_call_fails_answers_status_failed(client: httpx.AsyncClient, state: SandboxState) -> None:
    response = await create(client, recipient=TRIGGER_CALL_FAILS)
    assert response.status_code == 201
    assert response.json()["status"] == "failed"
    assert state.calls()[0]["status"] == "failed"
    check = await client.get(f"/verify/{response.json()['id']}", params={"token": state.calls()[0]["token"]})
    assert error_of(check)["description"] == "The token has already been processed."


async def test_trigger_hang_answers_500_after_hang_seconds(client: httpx.AsyncClient, state: SandboxState) -> None:
    started = anyio.current_time()
    response = await create(client, recipient=TRIGGER_HANG)
    assert anyio.current_time() - started >= 0.05
    assert response.status_code == 500
    assert error_of(response)["code"] == 99
    assert state.calls() == []


async def test_trigger_hang_outlasts_a_client_deadline(client: httpx.AsyncClient) -> None:
    with pytest.raises(TimeoutError):
        with anyio.fail_after(0.01):
            await create(client, recipient=TRIGGER_HANG)


async def test_calls_are_listed_newest_first(client: httpx.AsyncClient, clock: FakeClock) -> None:
    first = (await create(client, recipient="31612345671")).json()
    clock.advance(1)
    second = (await create(client, recipient="31612345672")).json()
    calls = (await client.get("/_sandbox/calls", headers={"Authorization": ""})).json()
    assert [call["id"] for call in calls] == [second["id"], first["id"]]


async def test_calls_list_shows_expiry(client: httpx.AsyncClient, state: SandboxState, clock: FakeClock) -> None:
    await create(client, timeout=30)
    clock.advance(30)
    assert state.calls()[0]["status"] == "expired"


async def test_state_keeps_at_most_1000_verifications(client: httpx.AsyncClient, state: SandboxState) -> None:
    first = (await create(client)).json()
    for _ in range(1000):
        await create(client)
    assert len(state.calls()) == 1000
    assert (await client.get(f"/verify/{first['id']}")).status_code == 404


async def test_page_lists_calls_html_escaped(client: httpx.AsyncClient, state: SandboxState) -> None:
    await create(client, template="<script>alert(1)</script> code %token")
    response = await client.get("/_sandbox/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "<script>" not in response.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; code " + state.calls()[0]["token"] in response.text
    assert "+" + RECIPIENT in response.text
    assert "style=" not in response.text


async def test_unknown_path_answers_the_errors_envelope(client: httpx.AsyncClient) -> None:
    response = await client.get("/nowhere")
    assert response.status_code == 404
    assert "errors" in response.json()


async def test_wrong_method_answers_405_with_the_errors_envelope(client: httpx.AsyncClient) -> None:
    response = await client.put("/verify/abc")
    assert response.status_code == 405
    assert error_of(response)["code"] == 21
