"""The JSON API's flow against the embedded sandbox: create, check, resend, cancel, and who may see what."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import datetime
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.applications import Starlette

from tests.api.support import NUMBER, OTHER_NUMBER, Registered, assert_problem, create
from tests.support import OPERATOR, FakeClock, attempts, calls_placed, spoken_code
from webapp.models import Attempt


def wrong(code: str) -> str:
    return "0" * len(code) if code != "0" * len(code) else "1" * len(code)


async def test_create_places_a_call_and_answers_the_verification(
    api: httpx.AsyncClient,
    app: Starlette,
    clock: FakeClock,
    shop: Registered,
    db: async_sessionmaker[AsyncSession],
) -> None:
    response = await create(api, "06 12345678", country="NL", client_ip="203.0.113.7")
    assert response.status_code == 201, response.text
    body = response.json()
    assert response.headers["location"] == f"/api/v1/verifications/{body['id']}"
    assert body["status"] == "pending" and body["phone_number"] == NUMBER and body["channel"] == "call"
    assert body["attempts_left"] == 3 and body["resend_in"] == 30
    assert datetime.fromisoformat(body["expires_at"]) > clock()
    assert "verified_at" not in body
    assert calls_placed(app) == 1 and app.state.sandbox.calls()[0]["recipient"] == NUMBER.removeprefix("+")
    [row] = await attempts(db)
    assert (row.kind, row.outcome, row.client_id, row.via, row.ip) == (
        "start",
        "sent",
        shop.client_id,
        "api",
        "203.0.113.7",
    )
    assert "set-cookie" not in response.headers


async def test_without_client_ip_the_limits_count_the_callers_own_address(
    api: httpx.AsyncClient,
    db: async_sessionmaker[AsyncSession],
) -> None:
    assert (await create(api)).status_code == 201
    [row] = await attempts(db)
    assert row.ip == "192.0.2.80"


async def test_a_wrong_code_is_200_pending_with_fewer_attempts_and_the_right_one_verifies(
    api: httpx.AsyncClient,
    app: Starlette,
    db: async_sessionmaker[AsyncSession],
) -> None:
    verification = (await create(api)).json()
    code = spoken_code(app)
    url = f"/api/v1/verifications/{verification['id']}"
    response = await api.post(url + "/check", json={"code": wrong(code)})
    assert response.status_code == 200
    assert response.json()["status"] == "pending" and response.json()["attempts_left"] == 2
    response = await api.post(url + "/check", json={"code": code})
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "verified" and datetime.fromisoformat(body["verified_at"])
    assert (await api.get(url)).json() == body
    assert [row.outcome for row in await attempts(db)] == ["sent", "wrong_code", "verified"]


async def test_every_wrong_code_used_is_failed(api: httpx.AsyncClient, app: Starlette) -> None:
    verification = (await create(api)).json()
    code = wrong(spoken_code(app))
    for _ in range(3):
        response = await api.post(f"/api/v1/verifications/{verification['id']}/check", json={"code": code})
        assert response.status_code == 200
    assert response.json()["status"] == "failed" and response.json()["attempts_left"] == 0


async def test_a_code_past_its_expiry_is_expired(api: httpx.AsyncClient, app: Starlette, clock: FakeClock) -> None:
    verification = (await create(api)).json()
    code = spoken_code(app)
    clock.advance(301)
    assert (await api.get(f"/api/v1/verifications/{verification['id']}")).json()["status"] == "expired"
    response = await api.post(f"/api/v1/verifications/{verification['id']}/check", json={"code": code})
    assert response.status_code == 200 and response.json()["status"] == "expired"


async def test_a_code_that_cant_be_right_is_invalid_code_and_never_reaches_the_provider(
    api: httpx.AsyncClient,
    app: Starlette,
) -> None:
    verification = (await create(api)).json()
    response = await api.post(f"/api/v1/verifications/{verification['id']}/check", json={"code": "12ab"})
    assert_problem(response, 422, "invalid_code")
    assert (await api.get(f"/api/v1/verifications/{verification['id']}")).json()["attempts_left"] == 3


async def test_resend_waits_for_the_cooldown_then_calls_again(
    api: httpx.AsyncClient,
    app: Starlette,
    clock: FakeClock,
) -> None:
    verification = (await create(api)).json()
    url = f"/api/v1/verifications/{verification['id']}/resend"
    response = await api.post(url)
    body = assert_problem(response, 429, "resend_too_soon")
    assert response.headers["retry-after"] == "30" and "30 seconds" in body["detail"]
    assert calls_placed(app) == 1
    clock.advance(31)
    response = await api.post(url)
    assert response.status_code == 200 and response.json()["status"] == "pending"
    assert response.json()["resend_in"] == 30
    assert calls_placed(app) == 2
    code = spoken_code(app)
    checked = await api.post(f"/api/v1/verifications/{verification['id']}/check", json={"code": code})
    assert checked.json()["status"] == "verified"


async def test_delete_cancels_and_the_verification_then_says_so(
    api: httpx.AsyncClient,
    app: Starlette,
    db: async_sessionmaker[AsyncSession],
) -> None:
    verification = (await create(api)).json()
    url = f"/api/v1/verifications/{verification['id']}"
    response = await api.delete(url)
    assert response.status_code == 204 and response.content == b""
    assert (await api.get(url)).json()["status"] == "cancelled"
    assert_problem(await api.post(url + "/check", json={"code": spoken_code(app)}), 409, "no_verification")
    assert (await api.delete(url)).status_code == 204  # over already: nothing to do
    assert [row.outcome for row in await attempts(db)] == ["sent", "cancelled", "no_verification"]


async def test_another_clients_verification_is_404_for_every_operation(
    api: httpx.AsyncClient,
    api_for: Callable[..., httpx.AsyncClient],
    other: Registered,
    app: Starlette,
) -> None:
    verification = (await create(api)).json()
    url = f"/api/v1/verifications/{verification['id']}"
    async with api_for(other) as intruder:
        answers = [
            await intruder.get(url),
            await intruder.post(url + "/check", json={"code": spoken_code(app)}),
            await intruder.post(url + "/resend"),
            await intruder.delete(url),
        ]
        never = await intruder.get("/api/v1/verifications/nosuchverification0")
    for response in answers:
        assert_problem(response, 404, "not_found")
        assert response.json()["detail"] == never.json()["detail"]  # ids can't be probed
    assert (await api.get(url)).json()["status"] == "pending"
    assert calls_placed(app) == 1


async def test_a_verification_of_the_page_is_no_clients(
    api: httpx.AsyncClient,
    client: httpx.AsyncClient,
    db: async_sessionmaker[AsyncSession],
) -> None:
    await client.post("/verify", data={"country": "NL", "phone": OTHER_NUMBER})
    async with db() as session:
        page_id = await session.scalar(select(Attempt.verification_id).where(Attempt.outcome == "sent"))
        via = await session.scalar(select(Attempt.via).where(Attempt.outcome == "sent"))
    assert page_id is not None and via is None
    assert_problem(await api.get(f"/api/v1/verifications/{page_id}"), 404, "not_found")


@pytest.mark.parametrize(
    "path", ["/api/v1/verifications/a%2Fb", "/api/v1/verifications/" + "x" * 65, "/api/v1/verifications/%00"]
)
async def test_ids_that_are_not_ours_are_404(api: httpx.AsyncClient, path: str) -> None:
    assert_problem(await api.get(path), 404, "not_found")


async def test_the_operators_filter_by_client_shows_the_api_rows(
    api: httpx.AsyncClient,
    client_for: Callable[..., httpx.AsyncClient],
    shop: Registered,
) -> None:
    await create(api)
    async with client_for("198.51.100.9") as browser:  # a call from the page, no client's
        await browser.post("/verify", data={"country": "NL", "phone": OTHER_NUMBER})
    async with client_for("192.0.2.50", auth=OPERATOR) as operator:
        everything = await operator.get("/admin/")
        page = await operator.get("/admin/", params={"client": shop.client_id})
    assert page.status_code == 200
    link, other_link = (f"/admin/numbers/{quote(n, safe='')}" for n in (NUMBER, OTHER_NUMBER))
    assert link in everything.text and other_link in everything.text
    assert link in page.text and other_link not in page.text
    assert "Example shop" in page.text and "(via api)" in page.text
    csv_rows = list(csv.DictReader(io.StringIO((await operator_csv(client_for, shop.client_id)).text)))
    assert [(row["outcome"], row["client_id"], row["via"]) for row in csv_rows] == [("sent", shop.client_id, "api")]


async def operator_csv(client_for: Callable[..., httpx.AsyncClient], client_id: str) -> httpx.Response:
    async with client_for("192.0.2.50", auth=OPERATOR) as operator:
        return await operator.get("/admin/attempts.csv", params={"client": client_id})


async def test_in_sandbox_mode_a_client_reads_its_verifications_calls(
    api: httpx.AsyncClient,
    api_for: Callable[..., httpx.AsyncClient],
    other: Registered,
    app: Starlette,
) -> None:
    verification = (await create(api)).json()
    url = f"/_sandbox/verifications/{verification['id']}/calls"
    [call] = (await api.get(url)).json()
    assert call["token"] == spoken_code(app) and call["recipient"] == NUMBER.removeprefix("+")
    async with api_for(other) as intruder:
        assert_problem(await intruder.get(url), 404, "not_found")
    async with api_for(None) as anonymous:
        assert_problem(await anonymous.get(url), 401, "unauthorized")
