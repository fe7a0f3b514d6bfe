"""Requests the API can't use: each a 4xx problem document, never a 500, and never a call placed."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.applications import Starlette

from tests.api.support import NUMBER, Registered, assert_problem, create
from tests.support import attempts, calls_placed, outcomes

CREATE = "/api/v1/verifications"


@pytest.mark.parametrize(
    ("content", "content_type", "status", "code"),
    [
        (b'{"phone_number": "+31612345678"', "application/json", 400, "invalid_body"),
        (b"\xff\xfe{}", "application/json", 400, "invalid_body"),
        (b'{"phone_number": "+31612345678", "phone_number": "+31612345679"}', "application/json", 400, "invalid_body"),
        (b'{"phone_number": NaN}', "application/json", 400, "invalid_body"),
        (b"[" * 10_000 + b"]" * 10_000, "application/json", 413, "body_too_large"),
        (b'{"a":' * 9 + b"1" + b"}" * 9, "application/json", 400, "invalid_body"),
        (b"phone_number=%2B31612345678", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
        (b'{"phone_number": "+31612345678"}', "text/plain", 415, "unsupported_media_type"),
        (b'{"phone_number": "+31612345678"}', "application/json; charset=latin-1", 415, "unsupported_media_type"),
        (b"", "application/json", 400, "invalid_body"),
        (b"[]", "application/json", 422, "invalid_request"),
        (b'"+31612345678"', "application/json", 422, "invalid_request"),
        (b'{"phone_number": 31612345678}', "application/json", 422, "invalid_request"),
        (b'{"phone_number": "+31612345678", "admin": true}', "application/json", 422, "invalid_request"),
        (b'{"phone_number": "+31612345678", "client_ip": "300.1.2.3"}', "application/json", 422, "invalid_request"),
        (b'{"phone_number": "+31612345678", "client_ip": "fe80::1%eth0"}', "application/json", 422, "invalid_request"),
        (b'{"phone_number": "+31612345678", "locale": "<script>"}', "application/json", 422, "invalid_request"),
        (b'{"country": "NL"}', "application/json", 422, "invalid_request"),
        (b'{"phone_number": "' + b"1" * 65 + b'"}', "application/json", 422, "invalid_request"),
    ],
)
async def test_a_body_that_cant_be_used_is_a_4xx_problem_and_no_call(
    api: httpx.AsyncClient,
    app: Starlette,
    db: async_sessionmaker[AsyncSession],
    shop: Registered,
    content: bytes,
    content_type: str,
    status: int,
    code: str,
) -> None:
    response = await api.post(CREATE, content=content, headers={"Content-Type": content_type})
    assert_problem(response, status, code)
    assert calls_placed(app) == 0
    [row] = await attempts(db)
    assert (row.kind, row.outcome, row.client_id, row.via) == ("start", code, shop.client_id, "api")


async def test_invalid_request_names_each_field(api: httpx.AsyncClient) -> None:
    response = await api.post(CREATE, json={"phone_number": 1, "extra": "x"})
    body = assert_problem(response, 422, "invalid_request")
    assert {error["field"] for error in body["errors"]} == {"phone_number", "extra"}


async def test_a_check_with_a_number_for_a_code_is_invalid_request(api: httpx.AsyncClient, app: Starlette) -> None:
    verification = (await create(api)).json()
    response = await api.post(f"/api/v1/verifications/{verification['id']}/check", json={"code": 123456})
    assert_problem(response, 422, "invalid_request")
    assert (await api.get(f"/api/v1/verifications/{verification['id']}")).json()["attempts_left"] == 3


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/",
        "/api/v1/nothing",
        "/api/v1/verifications/x/y/z",
        "/api/v1/verifications/",
        "/api/v1/verifications/a%0Ab",
        "/api/v1/verifications/a%0A/check",
    ],
)
async def test_unknown_paths_under_the_api_are_404_problems(api: httpx.AsyncClient, path: str) -> None:
    assert_problem(await api.get(path), 404, "not_found")


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("GET", CREATE, "POST"),
        ("PUT", CREATE + "/abc", "GET, DELETE, HEAD"),
        ("GET", CREATE + "/abc/check", "POST"),
        ("DELETE", "/api/v1/openapi.json", "GET, HEAD"),
        ("TRACE", CREATE, "POST"),
        ("QUERY", CREATE + "/abc", "GET, DELETE, HEAD"),
    ],
)
async def test_a_method_a_path_does_not_take_is_405_with_allow(
    api: httpx.AsyncClient,
    method: str,
    path: str,
    allow: str,
) -> None:
    response = await api.request(method, path)
    assert_problem(response, 405, "method_not_allowed")
    assert response.headers["allow"] == allow


async def test_a_cross_site_looking_request_is_not_refused_by_the_pages_origin_check(
    api: httpx.AsyncClient,
    app: Starlette,
) -> None:
    response = await api.post(
        CREATE,
        json={"phone_number": NUMBER},
        headers={"Origin": "https://elsewhere.example", "Sec-Fetch-Site": "cross-site"},
    )
    assert response.status_code == 201


async def test_no_credentials_is_401_with_a_challenge(
    api_for: Callable[..., httpx.AsyncClient],
    app: Starlette,
    db: async_sessionmaker[AsyncSession],
) -> None:
    async with api_for(None) as anonymous:
        response = await create(anonymous)
    assert_problem(response, 401, "unauthorized")
    assert response.headers["www-authenticate"].startswith("Basic ")
    assert calls_placed(app) == 0
    [row] = await attempts(db)
    assert (row.kind, row.outcome, row.ip, row.via) == ("auth", "unauthorized", "192.0.2.80", "api")


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer abc",
        "Basic",
        "Basic !!!",
        "Basic " + base64.b64encode(b"no-colon").decode(),
        "Basic " + base64.b64encode(b"\xff:\xfe").decode(),
        "Basic " + base64.b64encode(b":").decode(),
    ],
)
async def test_unreadable_credentials_are_401(api_for: Callable[..., httpx.AsyncClient], authorization: str) -> None:
    async with api_for(None) as anonymous:
        response = await anonymous.get("/api/v1/verifications/abc", headers={"Authorization": authorization})
    assert_problem(response, 401, "unauthorized")


async def test_a_wrong_secret_is_401_naming_the_client_in_the_log(
    api_for: Callable[..., httpx.AsyncClient],
    shop: Registered,
    db: async_sessionmaker[AsyncSession],
) -> None:
    async with api_for(None, auth=(shop.client_id, "wrong")) as guesser:
        assert_problem(await create(guesser), 401, "unauthorized")
    [row] = await attempts(db)
    assert row.client_id == shop.client_id


@pytest.mark.parametrize("settings_changes", [{"limit_api_auth_failures_per_ip": "3/minute"}])
async def test_failed_logins_are_limited_per_ip_before_any_secret_is_checked(
    api_for: Callable[..., httpx.AsyncClient],
    shop: Registered,
) -> None:
    async with api_for(None, auth=(shop.client_id, "wrong")) as guesser:
        for _ in range(3):
            assert_problem(await create(guesser), 401, "unauthorized")
        response = await create(guesser)
    assert_problem(response, 429, "blocked_ip")
    assert int(response.headers["retry-after"]) > 0
    async with api_for(shop) as right_but_same_ip:
        assert_problem(await create(right_but_same_ip), 429, "blocked_ip")
    async with api_for(shop, ip="192.0.2.81") as elsewhere:
        assert (await create(elsewhere)).status_code == 201


async def test_a_removed_client_is_401_even_though_its_secret_was_verified(
    api: httpx.AsyncClient,
    shop: Registered,
    db: async_sessionmaker[AsyncSession],
) -> None:
    assert_problem(await api.get("/api/v1/verifications/abc"), 404, "not_found")  # verified, and remembered
    from webapp.oidc import clients

    async with db() as session:
        assert await clients.remove(session, shop.client_id)
    assert_problem(await api.get("/api/v1/verifications/abc"), 401, "unauthorized")


async def test_api_answers_set_no_cookie_and_are_not_cached(api: httpx.AsyncClient) -> None:
    response = await create(api)
    assert "set-cookie" not in response.headers
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["content-type"] == "application/json"


@pytest.mark.parametrize("settings_changes", [{"limit_api_auth_failures_per_ip": "3/minute"}])
async def test_guesses_sent_all_at_once_get_only_the_limits_number_of_verifications(
    api_for: Callable[..., httpx.AsyncClient],
    shop: Registered,
    db: async_sessionmaker[AsyncSession],
) -> None:
    async with api_for(None, auth=(shop.client_id, "wrong")) as guesser:
        answers = await asyncio.gather(*(guesser.get("/api/v1/verifications/abc") for _ in range(12)))
    assert sorted(answer.status_code for answer in answers) == [401] * 3 + [429] * 9
    assert (await outcomes(db)).count("unauthorized") == 3  # folded into one row with a count
