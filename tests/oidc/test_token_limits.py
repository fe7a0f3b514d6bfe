"""Failed token requests are limited per client IP and per client."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.oidc.support import Registered, exchange, issue_code
from tests.support import FakeClock, attempts
from webapp.oidc.provider import Provider

LIMITS = {
    "limit_token_failures_per_ip": "3/minute",
    "limit_token_failures_per_client": "5/minute",
    "oidc_code_lifetime": 120,
}  # a code outlives the one-minute window
pytestmark = pytest.mark.parametrize("settings_changes", [LIMITS])


async def _fail(http: httpx.AsyncClient, client: Registered) -> httpx.Response:
    return await http.post(
        "/oidc/token",
        data={
            "grant_type": "authorization_code",
            "code": "guess",
            "redirect_uri": client.redirect_uri,
            "code_verifier": "v" * 43,
        },
        auth=(client.client_id, client.secret),
    )


async def test_past_the_per_ip_limit_even_a_good_request_is_refused_until_the_window_passes(
    provider: Provider,
    shop: Registered,
    clock: FakeClock,
    client_for: Callable[..., httpx.AsyncClient],
    db: async_sessionmaker[AsyncSession],
) -> None:
    async with client_for("198.51.100.30") as http:
        for _ in range(3):
            assert (await _fail(http, shop)).status_code == 400
        issued = await issue_code(provider, shop, clock)
        blocked = await exchange(http, shop, issued)
        assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) > 0
        assert blocked.headers["cache-control"] == "no-store"
        clock.advance(61)
        assert (await exchange(http, shop, issued)).status_code == 200  # the code was not spent while blocked
    assert (await attempts(db))[-2].outcome == "blocked_ip"


async def test_past_the_per_client_limit_that_client_is_refused_from_any_ip(
    provider: Provider,
    shop: Registered,
    other_site: Registered,
    clock: FakeClock,
    client_for: Callable[..., httpx.AsyncClient],
    db: async_sessionmaker[AsyncSession],
) -> None:
    for i in range(5):  # from five addresses, under the per-IP limit each
        async with client_for(f"198.51.100.{40 + i}") as http:
            assert (await _fail(http, shop)).status_code == 400
    async with client_for("198.51.100.99") as http:
        blocked = await exchange(http, shop, await issue_code(provider, shop, clock))
        assert blocked.status_code == 429
        assert (await exchange(http, other_site, await issue_code(provider, other_site, clock))).status_code == 200
    outcomes = [(a.outcome, a.client_id) for a in await attempts(db) if a.kind == "token"]
    assert ("blocked_client", shop.client_id) in outcomes


async def test_wrong_secrets_count_against_the_client(
    provider: Provider,
    shop: Registered,
    clock: FakeClock,
    client_for: Callable[..., httpx.AsyncClient],
) -> None:
    for i in range(5):
        async with client_for(f"198.51.100.{60 + i}") as http:
            wrong = await http.post(
                "/oidc/token",
                data={
                    "grant_type": "authorization_code",
                    "code": "x",
                    "redirect_uri": shop.redirect_uri,
                    "code_verifier": "v" * 43,
                },
                auth=(shop.client_id, "not-the-secret"),
            )
            assert wrong.status_code == 401
    async with client_for("198.51.100.99") as http:
        assert (await exchange(http, shop, await issue_code(provider, shop, clock))).status_code == 429


async def test_successes_do_not_count(
    provider: Provider,
    shop: Registered,
    clock: FakeClock,
    site_server: httpx.AsyncClient,
) -> None:
    for _ in range(6):
        assert (await exchange(site_server, shop, await issue_code(provider, shop, clock))).status_code == 200


async def test_an_ipv6_client_is_limited_by_its_network_not_its_address(
    provider: Provider,
    shop: Registered,
    clock: FakeClock,
    client_for: Callable[..., httpx.AsyncClient],
) -> None:
    """Issue 7, item 15: a /64 is one subscriber line; its addresses share one budget."""
    for host in range(3):
        async with client_for(f"2001:db8:5:6::{host + 1}") as http:
            assert (await _fail(http, shop)).status_code == 400
    async with client_for("2001:db8:5:6::99") as http:
        assert (await exchange(http, shop, await issue_code(provider, shop, clock))).status_code == 429
