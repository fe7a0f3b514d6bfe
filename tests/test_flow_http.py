"""The verification flow over HTTP: the ASGI app, the embedded sandbox, a real SQLite file."""

from __future__ import annotations

import asyncio
import base64
import json
import re
from html import unescape

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import delete

from tests.support import FakeClock, attempts, verifications
from webapp.app import create_app
from webapp.models import Attempt, Verification
from webapp.provider.sandbox import TRIGGER_CALL_FAILS, TRIGGER_HANG, TRIGGER_SERVER_ERROR, create_sandbox_app

NUMBER = "+31612345678"


def spoken_code(app: object) -> str:
    """The code the sandbox read out in its newest call."""
    return app.state.sandbox.calls()[0]["token"]  # type: ignore[attr-defined]


def calls_placed(app: object) -> int:
    return len(app.state.sandbox.calls())  # type: ignore[attr-defined]


async def call_me(client: httpx.AsyncClient, phone: str = "06 12345678", country: str = "NL") -> httpx.Response:
    return await client.post("/verify", data={"country": country, "phone": phone})


# -- the happy path ---------------------------------------------------------------


async def test_page_shows_the_phone_form_with_nl_preselected(client: httpx.AsyncClient) -> None:
    response = await client.get("/")
    assert response.status_code == 200
    assert 'name="phone"' in response.text and 'type="tel"' in response.text
    assert '<option value="NL" selected>Netherlands (+31)</option>' in response.text
    assert 'id="status" role="status"' in response.text
    assert "Sandbox mode" in response.text


async def test_htmx_start_answers_the_code_form_fragment(htmx: httpx.AsyncClient, app: object, db) -> None:
    response = await call_me(htmx)
    assert response.status_code == 200
    assert "HX-Request" in response.headers["vary"]
    assert "<html" not in response.text
    assert 'autocomplete="one-time-code"' in response.text and 'inputmode="numeric"' in response.text
    assert "Calling +31 6 12345678 now" in response.text
    assert 'hx-swap-oob="innerHTML:#status"' in response.text
    assert calls_placed(app) == 1
    [row] = await attempts(db)
    assert (row.kind, row.outcome, row.number, row.region, row.ip) == ("start", "sent", NUMBER, "NL", "203.0.113.10")
    assert row.provider_ref and row.provider_latency_ms is not None


async def test_htmx_happy_path_ends_verified(htmx: httpx.AsyncClient, app: object, db) -> None:
    await call_me(htmx)
    response = await htmx.post("/confirm", data={"code": spoken_code(app)})
    assert response.status_code == 200
    assert "+31 6 12345678</strong> is confirmed" in response.text
    assert '<p class="message ok">+31 6 12345678 is verified.</p>' in response.text
    assert "<html" not in response.text
    [verification] = await verifications(db)
    assert verification.status == "verified" and verification.verified_at is not None
    assert [(a.kind, a.outcome) for a in await attempts(db)] == [("start", "sent"), ("check", "verified")]


async def test_without_javascript_start_redirects_to_the_whole_page(client: httpx.AsyncClient, app: object) -> None:
    response = await call_me(client)
    assert response.status_code == 303 and response.headers["location"] == "/"
    page = await client.get("/")
    assert "<html" in page.text
    assert "Calling +31 6 12345678 now" in page.text
    assert 'name="code"' in page.text


async def test_without_javascript_happy_path_ends_verified(client: httpx.AsyncClient, app: object, db) -> None:
    await call_me(client)
    response = await client.post("/confirm", data={"code": spoken_code(app)}, follow_redirects=True)
    assert response.status_code == 200
    assert "is verified" in response.text and "<html" in response.text
    assert [a.outcome for a in await attempts(db)] == ["sent", "verified"]
    again = await client.get("/")
    assert 'name="phone"' in again.text, "after the result, the page starts over"


async def test_international_number_overrides_the_country(htmx: httpx.AsyncClient, db) -> None:
    response = await call_me(htmx, phone="+44 7400 123456", country="NL")
    assert response.status_code == 200
    [row] = await attempts(db)
    assert (row.number, row.region) == ("+447400123456", "GB")


async def test_code_with_spaces_and_arabic_digits_is_accepted(htmx: httpx.AsyncClient, app: object) -> None:
    await call_me(htmx)
    code = spoken_code(app)
    arabic = "".join(chr(0x0660 + int(d)) for d in code)
    response = await htmx.post("/confirm", data={"code": f" {arabic[:3]} {arabic[3:]} "})
    assert "is verified" in response.text


async def test_the_call_asks_for_tts_and_the_app_attempt_limit(htmx: httpx.AsyncClient, app: object, settings) -> None:
    await call_me(htmx)
    sandbox = app.state.sandbox  # type: ignore[attr-defined]
    [verification] = sandbox.verifications.values()
    [call] = sandbox.calls()
    assert call["type"] == "tts"
    assert call["body"] == f"Your account security code is {call['token']}."
    assert verification.max_attempts == settings.call.max_attempts
    assert (verification.valid_until - verification.created).total_seconds() == settings.call.timeout


# -- wrong codes, attempts, expiry --------------------------------------------------


async def test_wrong_code_then_right_code(htmx: httpx.AsyncClient, app: object, db) -> None:
    await call_me(htmx)
    code = spoken_code(app)
    wrong = "000000" if code != "000000" else "111111"
    response = await htmx.post("/confirm", data={"code": wrong})
    assert response.status_code == 422
    assert '<p class="message error">That code is not right. 2 attempts left.</p>' in response.text
    assert 'name="code"' in response.text and 'aria-invalid="true"' in response.text
    response = await htmx.post("/confirm", data={"code": code})
    assert response.status_code == 200 and "is verified" in response.text
    assert [a.outcome for a in await attempts(db)] == ["sent", "wrong_code", "verified"]


async def test_attempts_exhausted_closes_and_offers_a_new_call(htmx: httpx.AsyncClient, app: object, db) -> None:
    await call_me(htmx)
    code = spoken_code(app)
    wrong = "000000" if code != "000000" else "111111"
    for _ in range(2):
        await htmx.post("/confirm", data={"code": wrong})
    response = await htmx.post("/confirm", data={"code": wrong})
    assert response.status_code == 422
    assert "wrong too many times" in response.text
    assert 'name="code"' not in response.text and "Call me again" in response.text
    # the right code is no use any more, and never reaches the provider as a guess
    response = await htmx.post("/confirm", data={"code": code})
    assert response.status_code == 422 and "no longer be used" in response.text
    assert [a.outcome for a in await attempts(db)] == [
        "sent",
        "wrong_code",
        "wrong_code",
        "attempts_exhausted",
        "closed",
    ]
    [verification] = await verifications(db)
    assert (verification.status, verification.code_attempts) == ("failed", 3)


async def test_expired_code_is_refused_and_offers_a_new_call(
    htmx: httpx.AsyncClient, app: object, clock: FakeClock, settings, db
) -> None:
    await call_me(htmx)
    code = spoken_code(app)
    clock.advance(settings.call.timeout + 1)
    response = await htmx.post("/confirm", data={"code": code})
    assert response.status_code == 422
    assert "The code has expired" in response.text and "Call me again" in response.text
    assert [a.outcome for a in await attempts(db)] == ["sent", "expired"]
    [verification] = await verifications(db)
    assert verification.status == "expired"


async def test_expiry_seen_first_by_the_provider_closes_too(
    htmx: httpx.AsyncClient, app: object, clock: FakeClock, db
) -> None:
    await call_me(htmx)
    code = spoken_code(app)
    [sandboxed] = app.state.sandbox.verifications.values()  # type: ignore[attr-defined]
    sandboxed.valid_until = clock.now  # the provider's clock ran ahead of ours
    response = await htmx.post("/confirm", data={"code": code})
    assert response.status_code == 422 and "expired" in response.text
    assert [a.outcome for a in await attempts(db)][-1] == "expired"


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("", "Type the code you heard."),
        ("12345", "The code has 6 digits."),
        ("1234567", "The code has 6 digits."),
        ("12a456", "The code is made of digits only."),
        ("'; DROP TABLE attempts; --", "The code is made of digits only."),
        ("🙂🙂🙂🙂🙂🙂", "The code is made of digits only."),
        ("9" * 10_000, "The code has 6 digits."),
    ],
)
async def test_impossible_code_never_reaches_the_provider(
    htmx: httpx.AsyncClient, app: object, db, code: str, message: str
) -> None:
    await call_me(htmx)
    [sandboxed] = app.state.sandbox.verifications.values()  # type: ignore[attr-defined]
    response = await htmx.post("/confirm", data={"code": code})
    assert response.status_code == 422
    assert message in response.text
    assert sandboxed.attempts == 0, "the provider saw no check"
    assert [a.outcome for a in await attempts(db)] == ["sent", "invalid_code"]
    [verification] = await verifications(db)
    assert verification.code_attempts == 0


def sandbox_behind(app_holder: dict[str, object], rewrite) -> httpx.MockTransport:
    """A transport to the app's own sandbox that lets `rewrite(request)` answer first."""

    async def handler(request: httpx.Request) -> httpx.Response:
        answer = rewrite(request)
        if answer is not None:
            return answer
        sandbox = create_sandbox_app(app_holder["app"].state.sandbox)  # type: ignore[attr-defined]
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=sandbox), base_url="http://sandbox") as inner:
            forwarded = await inner.send(
                inner.build_request(request.method, str(request.url), headers=request.headers, content=request.content)
            )
            return httpx.Response(forwarded.status_code, headers=forwarded.headers, content=forwarded.content)

    return httpx.MockTransport(handler)


@pytest.fixture
async def misbehaving(settings, clock: FakeClock, client_for):
    """An app whose provider is the sandbox behind a rewrite rule the test sets."""
    holder: dict[str, object] = {}
    rules: list = []

    def rewrite(request: httpx.Request) -> httpx.Response | None:
        for rule in rules:
            answer = rule(request)
            if answer is not None:
                return answer
        return None

    application = create_app(settings, clock=clock, provider_transport=sandbox_behind(holder, rewrite))
    holder["app"] = application
    async with LifespanManager(application) as manager:
        transport = httpx.ASGITransport(app=manager.app, client=("203.0.113.10", 40000))
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver", headers={"HX-Request": "true"}
        ) as client:
            yield application, client, rules


async def test_a_200_that_is_not_verified_is_not_success(misbehaving, db) -> None:
    """Like the real API's answer to an empty token: 200 with status "sent". Not success."""
    application, client, rules = misbehaving
    await call_me(client)

    def sent_for_any_check(request: httpx.Request) -> httpx.Response | None:
        if request.method == "GET" and "token" in request.url.params:
            [verification] = application.state.sandbox.verifications.values()
            return httpx.Response(200, json={"id": verification.id, "recipient": 31612345678, "status": "sent"})
        return None

    rules.append(sent_for_any_check)
    response = await client.post("/confirm", data={"code": spoken_code(application)})
    assert response.status_code == 422
    assert "is verified" not in response.text and 'name="code"' in response.text
    assert [a.outcome for a in await attempts(db)] == ["sent", "unverified"]
    [verification] = await verifications(db)
    assert verification.status == "pending" and verification.code_attempts == 1


async def test_verified_for_another_verification_is_not_success(misbehaving, db) -> None:
    application, client, rules = misbehaving
    await call_me(client)
    rules.append(
        lambda request: (
            httpx.Response(200, json={"id": "someoneelse", "recipient": 1, "status": "verified"})
            if request.method == "GET"
            else None
        )
    )
    response = await client.post("/confirm", data={"code": spoken_code(application)})
    assert response.status_code == 422 and "is verified" not in response.text


async def test_provider_down_during_a_check_keeps_the_code_form(misbehaving, db) -> None:
    application, client, rules = misbehaving
    await call_me(client)
    rules.append(
        lambda request: httpx.Response(502, text="<html>Bad gateway</html>") if request.method == "GET" else None
    )
    response = await client.post("/confirm", data={"code": spoken_code(application)})
    assert response.status_code == 503
    assert "We couldn't check the code just now" in unescape(response.text) and 'name="code"' in response.text
    assert [a.outcome for a in await attempts(db)] == ["sent", "provider_error"]
    [verification] = await verifications(db)
    assert verification.code_attempts == 0, "the provider's outage costs the person no attempt"
    rules.clear()
    response = await client.post("/confirm", data={"code": spoken_code(application)})
    assert "is verified" in response.text


async def test_a_recipient_the_provider_refuses_is_a_422_on_the_phone_form(misbehaving, db) -> None:
    """Its own outcome, recipient_refused, with the page's status of old; the attempts row says provider_error."""
    _, client, rules = misbehaving
    rules.append(
        lambda request: (
            httpx.Response(
                422,
                json={"errors": [{"code": 21, "description": "recipient is invalid", "parameter": "recipient"}]},
            )
            if request.method == "POST"
            else None
        )
    )
    response = await call_me(client)
    assert response.status_code == 422
    assert "We can't call this number. Check it and try again." in unescape(response.text)
    assert 'name="phone"' in response.text and 'name="code"' not in response.text
    assert [a.outcome for a in await attempts(db)] == ["provider_error"]


async def test_wrong_access_key_says_try_later(misbehaving, db, caplog) -> None:
    _application, client, rules = misbehaving
    rules.append(
        lambda request: httpx.Response(
            401,
            json={
                "errors": [
                    {"code": 2, "description": "Request not allowed (incorrect access_key)", "parameter": "access_key"}
                ]
            },
        )
    )
    response = await call_me(client)
    assert response.status_code == 503
    assert "We couldn't place the call. Please try again later." in unescape(response.text)
    assert "MESSAGEBIRD_API_KEY" in caplog.text
    assert [a.outcome for a in await attempts(db)] == ["provider_error"]


# -- calling again ------------------------------------------------------------------


async def test_call_me_again_waits_for_the_cooldown(htmx: httpx.AsyncClient, app: object, clock: FakeClock, db) -> None:
    await call_me(htmx)
    clock.advance(10)
    response = await htmx.post("/resend")
    assert response.status_code == 429
    assert response.headers["retry-after"] == "20"
    assert "You can ask for a new call in 20 seconds." in response.text
    assert calls_placed(app) == 1
    clock.advance(21)  # past the per-number window too (1/30seconds), not on its edge
    response = await htmx.post("/resend")
    assert response.status_code == 200 and "again now" in response.text
    assert calls_placed(app) == 2
    assert [(a.kind, a.outcome) for a in await attempts(db)] == [
        ("start", "sent"),
        ("resend", "resend_too_soon"),
        ("resend", "sent"),
    ]


async def test_call_me_again_replaces_the_code(htmx: httpx.AsyncClient, app: object, clock: FakeClock, db) -> None:
    await call_me(htmx)
    first = spoken_code(app)
    clock.advance(31)
    await htmx.post("/resend")
    second = spoken_code(app)
    if first != second:
        response = await htmx.post("/confirm", data={"code": first})
        assert response.status_code == 422
    response = await htmx.post("/confirm", data={"code": second})
    assert "is verified" in response.text
    statuses = [call["status"] for call in app.state.sandbox.calls()]  # type: ignore[attr-defined]
    assert statuses == ["verified", "deleted"], "the old verification was cancelled at the provider"


async def test_new_call_after_attempts_ran_out(htmx: httpx.AsyncClient, app: object, clock: FakeClock, db) -> None:
    await call_me(htmx)
    wrong = "000000" if spoken_code(app) != "000000" else "111111"
    for _ in range(3):
        await htmx.post("/confirm", data={"code": wrong})
    clock.advance(31)
    response = await htmx.post("/resend")
    assert response.status_code == 200 and 'name="code"' in response.text
    assert "3 attempts left" in response.text
    response = await htmx.post("/confirm", data={"code": spoken_code(app)})
    assert "is verified" in response.text


async def test_use_a_different_number_goes_back_to_the_phone_form(htmx: httpx.AsyncClient, app: object, db) -> None:
    await call_me(htmx)
    response = await htmx.post("/restart")
    assert response.status_code == 200 and 'name="phone"' in response.text
    [verification] = await verifications(db)
    assert verification.status == "cancelled"
    response = await htmx.post("/confirm", data={"code": spoken_code(app)})
    assert response.status_code == 409 and 'name="phone"' in response.text


async def test_giving_up_on_a_call_is_logged_as_cancelled(htmx: httpx.AsyncClient, db) -> None:
    await call_me(htmx)
    await htmx.post("/restart")
    rows = await attempts(db)
    assert [(row.kind, row.outcome) for row in rows] == [("start", "sent"), ("cancel", "cancelled")]
    assert rows[1].verification_id == rows[0].verification_id and rows[1].ip == rows[0].ip


async def test_a_new_number_in_the_same_session_logs_the_old_call_cancelled(htmx: httpx.AsyncClient, db) -> None:
    await call_me(htmx, phone="+31612345678")
    await call_me(htmx, phone="+31612345679")
    assert [(row.kind, row.outcome, row.number) for row in await attempts(db)] == [
        ("start", "sent", "+31612345678"),
        ("cancel", "cancelled", "+31612345678"),
        ("start", "sent", "+31612345679"),
    ]


# -- provider trouble: the sandbox's trigger numbers ----------------------------------


@pytest.mark.parametrize(
    ("digits", "outcome"),
    [(TRIGGER_SERVER_ERROR, "provider_error"), (TRIGGER_HANG, "provider_error"), (TRIGGER_CALL_FAILS, "call_failed")],
)
async def test_provider_trouble_is_a_clear_503(htmx: httpx.AsyncClient, db, digits: str, outcome: str) -> None:
    response = await call_me(htmx, phone="+" + digits)
    assert response.status_code == 503
    assert "We couldn't place the call. Please try again later." in unescape(response.text)
    assert 'name="phone"' in response.text
    [row] = await attempts(db)
    assert (row.kind, row.outcome, row.number) == ("start", outcome, "+" + digits)
    [verification] = await verifications(db)
    assert verification.status == "unplaced", "no call went out, and the number is free again for a later try"
    assert row.verification_id == verification.id


async def test_provider_forgetting_the_verification_closes_it(htmx: httpx.AsyncClient, app: object, db) -> None:
    await call_me(htmx)
    app.state.sandbox.verifications.clear()  # type: ignore[attr-defined]
    response = await htmx.post("/confirm", data={"code": "123456"})
    assert response.status_code == 422 and "expired" in response.text  # the provider forgot it: 404


# -- sessions and cookies ------------------------------------------------------------


async def test_session_cookie_is_signed_httponly_and_lax(client: httpx.AsyncClient) -> None:
    response = await call_me(client)
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie
    assert "secure" not in cookie, "sandbox mode serves plain http on localhost"


async def test_forged_cookie_gets_the_phone_form(client_for, app: object, db) -> None:
    async with client_for(headers={"HX-Request": "true"}) as htmx:
        htmx.cookies.set("voice2fa_session", "eyJ2ZXJpZmljYXRpb24iOiAiYWJjIn0=.forged.signature")
        response = await htmx.post("/confirm", data={"code": "123456"})
    assert response.status_code == 409
    assert 'name="phone"' in response.text and "That verification has ended" in response.text
    [row] = await attempts(db)
    assert (row.kind, row.outcome) == ("check", "no_verification")


async def test_stale_cookie_gets_the_phone_form_page(client: httpx.AsyncClient, app: object, db) -> None:
    await call_me(client)
    async with db() as session:
        await session.execute(delete(Attempt))
        await session.execute(delete(Verification))
        await session.commit()
    page = await client.get("/")
    assert page.status_code == 200 and 'name="phone"' in page.text
    response = await client.post("/confirm", data={"code": "123456"})
    assert response.status_code == 409 and "<html" in response.text and 'name="phone"' in response.text


def session_cookie(client: httpx.AsyncClient) -> dict[str, object]:
    """What the session cookie carries: starlette signs base64 JSON, it does not encrypt it."""
    payload = client.cookies["voice2fa_session"].split(".")[0]
    return json.loads(base64.b64decode(payload + "=" * (-len(payload) % 4)))


async def test_the_session_cookie_holds_no_phone_number_only_ids_and_message_keys(
    client: httpx.AsyncClient, app: object, clock: FakeClock, db
) -> None:
    seen = []
    await call_me(client)
    seen.append(session_cookie(client))
    assert "Calling +31 6 12345678 now" in (await client.get("/")).text, "the page fills in the number"
    clock.advance(31)
    await client.post("/resend")
    seen.append(session_cookie(client))
    assert "Calling +31 6 12345678 again now" in (await client.get("/")).text
    await client.post("/confirm", data={"code": spoken_code(app)})
    seen.append(session_cookie(client))
    assert "+31 6 12345678 is verified." in (await client.get("/")).text
    [verification] = await verifications(db)
    # (sandbox mode: the phone panel's "sandbox_verification" is an opaque id too)
    assert seen == [
        {"verification": verification.id, "sandbox_verification": verification.id, "flash": "calling"},
        {"verification": verification.id, "sandbox_verification": verification.id, "flash": "calling_again"},
        {"sandbox_verification": verification.id, "result": verification.id, "flash": "verified"},
    ]
    assert not any("612345678" in json.dumps(cookie) for cookie in seen)


async def test_the_page_never_holds_a_provider_id(htmx: httpx.AsyncClient, app: object) -> None:
    response = await call_me(htmx)
    [sandboxed] = app.state.sandbox.verifications.values()  # type: ignore[attr-defined]
    assert sandboxed.id not in response.text
    assert sandboxed.id not in response.headers.get("set-cookie", "")


# -- bad input ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("phone", "message"),
    [
        ("", "Type your phone number."),
        ("06 1234 5678 ext 99", "Phone numbers can contain only digits"),
        ("+31 6 1234 +5678", "Use only one + at the start"),
        ("1-800-FLOWERS", "Phone numbers can contain only digits"),
        ("' OR 1=1; --", "Phone numbers can contain only digits"),
        ("📞📞📞", "Phone numbers can contain only digits"),
        ("0" * 10_000, "too long"),
        ("0612", "doesn't look like a valid number for Netherlands"),
    ],
)
async def test_bad_numbers_get_a_clear_422_and_a_log_row(
    htmx: httpx.AsyncClient, app: object, db, phone: str, message: str
) -> None:
    response = await call_me(htmx, phone=phone)
    assert response.status_code == 422
    assert message in unescape(response.text)
    assert 'aria-invalid="true"' in response.text
    assert calls_placed(app) == 0
    [row] = await attempts(db)
    assert (row.kind, row.outcome, row.number) == ("start", "invalid_number", None)
    assert row.raw_input == phone[:64].replace("\x00", "")


async def test_missing_fields_are_a_clear_422(htmx: httpx.AsyncClient, db) -> None:
    response = await htmx.post("/verify", data={})
    assert response.status_code == 422 and "Type your phone number." in response.text
    assert [a.outcome for a in await attempts(db)] == ["invalid_number"]


async def test_the_typed_number_is_kept_in_the_form_after_a_refusal(client: httpx.AsyncClient) -> None:
    response = await call_me(client, phone="06 12 <b>", country="BE")
    assert response.status_code == 422
    assert 'value="06 12 &lt;b&gt;"' in response.text
    assert '<option value="BE" selected>' in response.text


async def test_unknown_country_without_plus_is_refused(htmx: httpx.AsyncClient) -> None:
    response = await call_me(htmx, country="ZZ'><script>", phone="0612345678")
    assert response.status_code == 422
    assert "Choose a country" in response.text
    assert "<script>" not in response.text


async def test_non_utf8_form_is_a_400(htmx: httpx.AsyncClient, db) -> None:
    response = await htmx.post(
        "/verify", content=b"country=NL&phone=%FF%FE06", headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert response.status_code == 400 and "not valid UTF-8" in response.text
    response = await htmx.post(
        "/verify", content=b"country=NL&phone=\xff\xfe", headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert response.status_code == 400


async def test_huge_form_is_a_413(htmx: httpx.AsyncClient) -> None:
    response = await htmx.post("/verify", data={"country": "NL", "phone": "1" * 40_000})
    assert response.status_code == 413 and "far too big" in response.text


async def test_multipart_form_is_a_415(htmx: httpx.AsyncClient) -> None:
    response = await htmx.post("/verify", files={"phone": ("a.txt", b"0612345678")})
    assert response.status_code == 415


async def test_code_form_posted_without_a_session_gets_the_phone_form(client: httpx.AsyncClient, db) -> None:
    response = await client.post("/confirm", data={"code": "123456"})
    assert response.status_code == 409 and 'name="phone"' in response.text
    response = await client.post("/resend", data={})
    assert response.status_code == 409
    assert [(a.kind, a.outcome) for a in await attempts(db)] == [
        ("check", "no_verification"),
        ("resend", "no_verification"),
    ]


# -- the page's plumbing ----------------------------------------------------------------


async def test_healthz(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "database": "ok",
        "limiter": "ok",
        "unrecorded_calls": 0,
        "providers": {"messagebird": "ok"},
    }


async def test_pages_carry_a_strict_csp_and_no_inline_script_or_style(client: httpx.AsyncClient) -> None:
    response = await client.get("/")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert not re.search(r"<script(?![^>]*\bsrc=)", response.text), "no inline <script>"
    assert "style=" not in response.text and "hx-on" not in response.text


async def test_htmx_is_served_from_the_app(client: httpx.AsyncClient) -> None:
    page = await client.get("/")
    [src] = re.findall(r'src="(/static/htmx-[0-9.]+\.min\.js)"', page.text)
    script = await client.get(src)
    assert script.status_code == 200 and "htmx" in script.text[:200]


async def test_sandbox_calls_lists_the_spoken_code(htmx: httpx.AsyncClient, app: object) -> None:
    await call_me(htmx)
    calls = (await htmx.get("/_sandbox/calls")).json()
    assert calls[0]["recipient"] == "31612345678"
    panel = await htmx.get("/_sandbox/phone")
    assert calls[0]["token"] in panel.text and "+31 6 12345678" in panel.text


async def test_unknown_path_is_a_404(client: httpx.AsyncClient) -> None:
    assert (await client.get("/nope")).status_code == 404
    assert (await client.get("/verify")).status_code == 405


async def test_a_cross_site_post_places_no_call(client: httpx.AsyncClient, app: object, db) -> None:
    response = await client.post(
        "/verify", data={"country": "NL", "phone": "0612345678"}, headers={"Sec-Fetch-Site": "cross-site"}
    )
    assert response.status_code == 403 and "Cross-site" in response.text
    assert calls_placed(app) == 0


async def test_a_very_long_country_is_refused_clearly(htmx: httpx.AsyncClient, db) -> None:
    response = await call_me(htmx, phone="0612345678", country="X" * 10_000)
    assert response.status_code == 422 and "Choose a country" in response.text
    [row] = await attempts(db)
    assert row.region == "XXX"


async def test_the_right_code_sent_twice_at_once_stays_verified(client_for, app: object, db) -> None:
    """A double click, or two tabs: one check verifies; the other finds it finished (409) and must not undo it."""
    async with (
        client_for(headers={"HX-Request": "true"}) as first,
        client_for(headers={"HX-Request": "true"}) as second,
    ):
        await call_me(first)
        second.cookies = first.cookies
        code = spoken_code(app)
        responses = await asyncio.gather(
            first.post("/confirm", data={"code": code}), second.post("/confirm", data={"code": code})
        )
    assert sorted(r.status_code for r in responses) == [200, 409]
    assert all("+31 6 12345678</strong> is confirmed" in r.text for r in responses)
    [verification] = await verifications(db)
    assert verification.status == "verified"
    assert sorted(a.outcome for a in await attempts(db)) == ["replayed", "sent", "verified"]


async def test_already_processed_asks_the_provider_how_it_ended(misbehaving, db) -> None:
    """A check that meets "already processed" (the other click won) is verified if the provider says so."""
    application, client, _rules = misbehaving
    await call_me(client)
    code = spoken_code(application)
    [sandboxed] = application.state.sandbox.verifications.values()
    sandboxed.status = "verified"  # the provider verified it through another request …
    response = await client.post("/confirm", data={"code": code})  # … so this check answers "already processed"
    assert response.status_code == 200 and "is verified" in response.text
    [verification] = await verifications(db)
    assert verification.status == "verified"
    assert [a.outcome for a in await attempts(db)] == ["sent", "verified"]


async def test_already_processed_and_failed_at_the_provider_closes(misbehaving, db) -> None:
    application, client, _rules = misbehaving
    await call_me(client)
    [sandboxed] = application.state.sandbox.verifications.values()
    sandboxed.status = "failed"
    response = await client.post("/confirm", data={"code": "123456"})
    assert response.status_code == 422 and "can no longer be used" in response.text
    [verification] = await verifications(db)
    assert verification.status == "failed"


async def test_a_form_of_raw_utf8_is_read(htmx: httpx.AsyncClient, db) -> None:
    """curl -d sends UTF-8 unescaped: Arabic-Indic digits arrive as they are."""
    response = await htmx.post(
        "/verify",
        content="country=NL&phone=٠٦١٢٣٤٥٦٧٨".encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200
    [row] = await attempts(db)
    assert row.number == "+31612345678"
