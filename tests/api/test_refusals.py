"""Every refusal the API answers: its problem document, status, Retry-After, attempts row, and no call placed."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.applications import Starlette

from tests.api.support import NUMBER, Registered, assert_problem, create
from tests.support import NL_MOBILES, FakeClock, attempts, calls_placed, spoken_code
from webapp import denylist


async def test_a_number_that_cant_be_called_is_invalid_number(
    api: httpx.AsyncClient,
    app: Starlette,
    db: async_sessionmaker[AsyncSession],
    shop: Registered,
) -> None:
    body = assert_problem(await create(api, "12"), 422, "invalid_number")
    assert body["detail"]
    [row] = await attempts(db)
    assert (row.outcome, row.client_id, row.via, row.raw_input) == ("invalid_number", shop.client_id, "api", "12")
    assert calls_placed(app) == 0


@pytest.mark.parametrize("settings_changes", [{"allowed_countries": ("BE",)}])
async def test_a_country_not_served_is_blocked_country(api: httpx.AsyncClient, app: Starlette) -> None:
    assert_problem(await create(api), 422, "blocked_country")
    assert calls_placed(app) == 0


async def test_a_premium_rate_number_is_blocked_number_type(api: httpx.AsyncClient, app: Starlette) -> None:
    assert_problem(await create(api, "+31 906 1234"), 422, "blocked_number_type")
    assert calls_placed(app) == 0


@pytest.mark.parametrize("entry", [NUMBER, "203.0.113.0/24"])
async def test_the_deny_list_is_blocked_denylist(
    api: httpx.AsyncClient,
    app: Starlette,
    db: async_sessionmaker[AsyncSession],
    entry: str,
) -> None:
    async with db() as session:
        await denylist.add(session, denylist.parse_entry(entry), reason="test", by="test", now=datetime.now(UTC))
    assert_problem(await create(api, client_ip="203.0.113.7"), 422, "blocked_denylist")
    assert calls_placed(app) == 0


async def test_a_number_already_being_called_is_blocked_pending_with_retry_after(
    api: httpx.AsyncClient,
    app: Starlette,
) -> None:
    assert (await create(api)).status_code == 201
    response = await create(api)
    assert_problem(response, 429, "blocked_pending")
    assert int(response.headers["retry-after"]) > 0
    assert calls_placed(app) == 1


async def test_a_number_called_just_now_is_blocked_number(api: httpx.AsyncClient, app: Starlette) -> None:
    first = (await create(api)).json()
    assert (await api.delete(f"/api/v1/verifications/{first['id']}")).status_code == 204
    response = await create(api)
    assert_problem(response, 429, "blocked_number")
    assert response.headers["retry-after"] == "30"
    assert calls_placed(app) == 1


async def test_the_per_ip_limit_counts_client_ip(
    api: httpx.AsyncClient,
    app: Starlette,
    db: async_sessionmaker[AsyncSession],
) -> None:
    for number in NL_MOBILES[:5]:
        assert (await create(api, number, client_ip="203.0.113.7")).status_code == 201
    response = await create(api, NL_MOBILES[5], client_ip="203.0.113.7")
    assert_problem(response, 429, "blocked_ip")
    assert int(response.headers["retry-after"]) > 0
    # another person behind the same backend is not held up by the first one's limit
    assert (await create(api, NL_MOBILES[6], client_ip="203.0.113.8")).status_code == 201
    assert calls_placed(app) == 6
    assert (await attempts(db))[5].ip == "203.0.113.7"


@pytest.mark.parametrize("settings_changes", [{"limit_api_calls_per_client": "3/minute"}])
async def test_each_client_has_its_own_ceiling(
    api: httpx.AsyncClient,
    api_for: Callable[..., httpx.AsyncClient],
    other: Registered,
    app: Starlette,
    clock: FakeClock,
) -> None:
    for i, number in enumerate(NL_MOBILES[:3]):
        assert (await create(api, number, client_ip=f"203.0.113.{i}")).status_code == 201
    response = await create(api, NL_MOBILES[3], client_ip="203.0.113.50")
    body = assert_problem(response, 429, "blocked_client")
    assert int(response.headers["retry-after"]) > 0 and "client" in body["detail"]
    assert calls_placed(app) == 3
    async with api_for(other) as other_api:
        assert (await create(other_api, NL_MOBILES[4], client_ip="203.0.113.51")).status_code == 201
    clock.advance(61)
    assert (await create(api, NL_MOBILES[5], client_ip="203.0.113.52")).status_code == 201


@pytest.mark.parametrize("settings_changes", [{"limit_api_calls_per_client": "2/10minutes"}])
async def test_resends_count_against_the_clients_ceiling(
    api: httpx.AsyncClient,
    app: Starlette,
    clock: FakeClock,
) -> None:
    verification = (await create(api)).json()
    clock.advance(31)
    assert (await api.post(f"/api/v1/verifications/{verification['id']}/resend")).status_code == 200
    clock.advance(31)
    assert_problem(await api.post(f"/api/v1/verifications/{verification['id']}/resend"), 429, "blocked_client")
    assert calls_placed(app) == 2


@pytest.mark.parametrize("settings_changes", [{"limit_calls_global": "1/minute"}])
async def test_the_global_ceiling_is_blocked_global(api: httpx.AsyncClient, app: Starlette) -> None:
    assert (await create(api, NL_MOBILES[0])).status_code == 201
    assert_problem(await create(api, NL_MOBILES[1]), 429, "blocked_global")


@pytest.mark.parametrize(("number", "code"), [("+31610000500", "provider_error"), ("+31610000486", "call_failed")])
async def test_a_call_the_provider_did_not_place_is_503(api: httpx.AsyncClient, number: str, code: str) -> None:
    assert_problem(await create(api, number), 503, code)


async def test_checks_and_resends_of_a_verified_one_are_409(api: httpx.AsyncClient, app: Starlette) -> None:
    verification = (await create(api)).json()
    url = f"/api/v1/verifications/{verification['id']}"
    code = spoken_code(app)
    assert (await api.post(url + "/check", json={"code": code})).json()["status"] == "verified"
    assert_problem(await api.post(url + "/check", json={"code": code}), 409, "replayed")
    assert_problem(await api.post(url + "/resend"), 409, "already_verified")


@pytest.mark.parametrize("settings_changes", [{"limit_check_per_ip": "2/minute"}])
async def test_checks_count_under_the_verifications_client_ip(api: httpx.AsyncClient, app: Starlette) -> None:
    verification = (await create(api, client_ip="203.0.113.7")).json()
    url = f"/api/v1/verifications/{verification['id']}/check"
    for _ in range(2):
        assert (await api.post(url, json={"code": "000000"})).status_code == 200
    response = await api.post(url, json={"code": spoken_code(app)})
    assert_problem(response, 429, "blocked_ip")
    assert int(response.headers["retry-after"]) > 0


@pytest.mark.parametrize("settings_changes", [{"ratelimit_storage_url": "redis://127.0.0.1:1/0"}])
async def test_the_limiter_away_is_503_and_no_call(api: httpx.AsyncClient, app: Starlette) -> None:
    assert_problem(await create(api), 503, "limiter_unavailable")
    assert calls_placed(app) == 0


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_the_database_away_is_503_problem_details(
    api: httpx.AsyncClient,
    app: Starlette,
    database_url: str,
) -> None:
    path = Path(make_url(database_url).database or "")
    assert (await api.get("/healthz")).status_code == 200
    for file in path.parent.glob(path.name + "*"):
        file.unlink()
    response = await create(api)
    assert_problem(response, 503, "storage_unavailable")
    assert response.headers["retry-after"] == "30"
    assert calls_placed(app) == 0
