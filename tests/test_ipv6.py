"""IPv6 clients are counted by their /64 (LIMIT_IPV6_PREFIX) in every per-IP limit; the log keeps the full address."""

from __future__ import annotations

import re
from collections.abc import Callable
from html import unescape

import httpx
import pytest

from tests.support import NL_MOBILES, OPERATOR, attempts, start_call

ONE_64 = [f"2001:db8:1:2::{i:x}" for i in range(1, 10)]
NEIGHBOUR_64 = "2001:db8:1:3::1"


async def start_from(client_for: Callable[..., httpx.AsyncClient], ip: str, phone: str) -> httpx.Response:
    async with client_for(ip) as client:
        return await start_call(client, phone)


async def test_addresses_of_one_64_share_the_start_limit(client_for, app, db) -> None:
    for ip, phone in zip(ONE_64[:5], NL_MOBILES, strict=False):
        assert (await start_from(client_for, ip, phone)).status_code == 200
    response = await start_from(client_for, ONE_64[5], NL_MOBILES[5])
    assert response.status_code == 429 and "Too many calls requested from your network" in response.text
    assert (await start_from(client_for, NEIGHBOUR_64, NL_MOBILES[6])).status_code == 200, (
        "the next /64 is someone else"
    )


async def test_the_attempts_log_keeps_the_full_address(client_for, app, db) -> None:
    for ip, phone in zip(ONE_64[:6], NL_MOBILES, strict=False):
        await start_from(client_for, ip, phone)
    assert [(row.ip, row.outcome) for row in await attempts(db)] == [(ip, "sent") for ip in ONE_64[:5]] + [
        (ONE_64[5], "blocked_ip")
    ]


@pytest.mark.parametrize("settings_changes", [{"limit_ipv6_prefix": 48}])
async def test_the_ipv6_prefix_length_is_a_setting(client_for, app) -> None:
    for i, phone in enumerate(NL_MOBILES[:5]):
        assert (await start_from(client_for, f"2001:db8:1:{i}::1", phone)).status_code == 200
    assert (await start_from(client_for, "2001:db8:1:ffff::1", NL_MOBILES[5])).status_code == 429
    assert (await start_from(client_for, "2001:db8:2::1", NL_MOBILES[6])).status_code == 200


@pytest.mark.parametrize("settings_changes", [{"limit_check_per_ip": "3/minute"}])
async def test_addresses_of_one_64_share_the_check_limit(client_for, app) -> None:
    statuses = []
    for ip in ONE_64[:4]:
        async with client_for(ip) as client:
            statuses.append(
                (await client.post("/confirm", data={"code": "1"}, headers={"HX-Request": "true"})).status_code
            )
    assert statuses == [409, 409, 409, 429]


async def test_failed_operator_logins_from_one_64_share_their_limit(client_for, app) -> None:
    for ip in ONE_64[:5]:
        async with client_for(ip, auth=(OPERATOR[0], "guess")) as guesser:
            assert (await guesser.get("/admin/")).status_code == 401
    async with client_for(ONE_64[5], auth=OPERATOR) as same_network:
        assert (await same_network.get("/admin/")).status_code == 429
    async with client_for(NEIGHBOUR_64, auth=OPERATOR) as other_network:
        assert (await other_network.get("/admin/")).status_code == 200


async def test_the_operators_ip_page_shows_the_counters_of_the_64(client_for, app) -> None:
    for ip, phone in zip(ONE_64[:2], NL_MOBILES, strict=False):
        await start_from(client_for, ip, phone)
    async with client_for("192.0.2.50", auth=OPERATOR) as operator:
        html = unescape(re.sub(r"\s+", " ", (await operator.get(f"/admin/ips/{ONE_64[2]}")).text))
    assert "The limits count this address as 2001:db8:1:2::/64" in re.sub(r"<[^>]+>", "", html)
    assert "Calls asked from this address, 5 per 1 minute: 3 of 5 left" in html
