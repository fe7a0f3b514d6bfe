"""One verification, one state machine: finished means finished, and a code answers only for its own call."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import attempts, call_me, spoken_code, verifications

NUMBER = "+31612345678"


# -- a finished verification is not a fresh proof ------------------------------------------


@pytest.mark.parametrize("code", ["000000", "abc", "", "the right one"])
async def test_a_code_posted_with_an_old_cookie_after_success_is_a_409_result_not_a_verification(
    client_for, app: object, db, code: str
) -> None:
    async with client_for() as person:
        await call_me(person)
        old_cookie = person.cookies["voice2fa_session"]
        right = spoken_code(app)
        await person.post("/confirm", data={"code": right})
    [before] = await verifications(db)
    [sandboxed] = app.state.sandbox.verifications.values()  # type: ignore[attr-defined]
    checks_seen = sandboxed.attempts
    async with client_for("198.51.100.9") as replayer:
        replayer.cookies.set("voice2fa_session", old_cookie)
        response = await replayer.post("/confirm", data={"code": right if code == "the right one" else code})
    assert response.status_code == 409
    assert "+31 6 12345678</strong> is confirmed" in response.text
    assert "already verified" in response.text
    assert [a.outcome for a in await attempts(db)] == ["sent", "verified", "replayed"]
    [after] = await verifications(db)
    assert after.verified_at == before.verified_at, "the replay does not move the time it was verified"
    assert sandboxed.attempts == checks_seen, "the provider is not asked about a finished verification"


async def test_htmx_gets_the_result_fragment_with_409_for_a_code_after_success(
    htmx: httpx.AsyncClient, app: object, db
) -> None:
    await call_me(htmx)
    code = spoken_code(app)
    cookie = htmx.cookies["voice2fa_session"]
    await htmx.post("/confirm", data={"code": code})
    htmx.cookies.set("voice2fa_session", cookie)
    response = await htmx.post("/confirm", data={"code": code})
    assert response.status_code == 409
    assert "<html" not in response.text and "is confirmed" in response.text
    assert [a.outcome for a in await attempts(db)] == ["sent", "verified", "replayed"]
