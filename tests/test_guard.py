"""The abuse guard over HTTP: every refusal happens before the provider, counted at the sandbox.

Time is the test's clock (the app, the sandbox and the rate-limit counters all
follow it), so windows expire without sleeping.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from html import unescape

import httpx
import pytest

from tests.support import NL_MOBILES, FakeClock, attempts, calls_placed, outcomes, start_call, verifications
from webapp import denylist

# -- per client IP --------------------------------------------------------------------


@pytest.mark.parametrize("settings_changes", [{"limit_start_per_ip": "3/minute;4/hour"}])
async def test_one_ip_is_limited_across_numbers(client: httpx.AsyncClient, app: object, clock: FakeClock, db) -> None:
    for phone in NL_MOBILES[:3]:
        assert (await start_call(client, phone)).status_code == 200
    response = await start_call(client, NL_MOBILES[3])
    assert response.status_code == 429
    assert int(response.headers["retry-after"]) == 60
    assert "Too many calls requested from your network. Try again in 1 minute." in unescape(response.text)
    assert calls_placed(app) == 3
    clock.advance(61)
    assert (await start_call(client, NL_MOBILES[4])).status_code == 200, "the minute window expired"
    clock.advance(61)
    response = await start_call(client, NL_MOBILES[5])
    assert response.status_code == 429, "the hour window still holds"
    assert int(response.headers["retry-after"]) > 3000
    assert calls_placed(app) == 4
    assert (await outcomes(db)).count("blocked_ip") == 2


async def test_an_ip_refusal_keeps_what_was_typed(client: httpx.AsyncClient, app: object) -> None:
    for phone in NL_MOBILES[:5]:
        await start_call(client, phone)
    response = await start_call(client, NL_MOBILES[5])
    assert response.status_code == 429
    assert response.headers["hx-reswap"] == "none", "only the status changes; the form stays as typed"
    assert 'hx-swap-oob="innerHTML:#status"' in response.text and 'name="phone"' not in response.text


async def test_an_ip_refusal_without_javascript_is_a_whole_page(client: httpx.AsyncClient, app: object) -> None:
    for phone in NL_MOBILES[:5]:
        await start_call(client, phone)
    response = await client.post("/verify", data={"country": "NL", "phone": NL_MOBILES[5]})
    assert response.status_code == 429 and "<html" in response.text and 'name="phone"' in response.text


async def test_the_ip_limit_is_counted_before_the_form_is_read(client: httpx.AsyncClient, app: object, db) -> None:
    for _ in range(5):
        await client.post("/verify", content=b"\xff", headers={"Content-Type": "application/x-www-form-urlencoded"})
    response = await start_call(client, NL_MOBILES[0])
    assert response.status_code == 429, "unreadable forms spend the IP's allowance too"
    assert calls_placed(app) == 0


@pytest.mark.parametrize("settings_changes", [{"limit_check_per_ip": "4/minute"}])
async def test_code_checks_are_limited_per_ip(client: httpx.AsyncClient, app: object, clock: FakeClock, db) -> None:
    await start_call(client, NL_MOBILES[0])
    [sandboxed] = app.state.sandbox.verifications.values()  # type: ignore[attr-defined]
    for _ in range(4):
        response = await client.post("/confirm", data={"code": "12"}, headers={"HX-Request": "true"})
        assert response.status_code == 422
    response = await client.post("/confirm", data={"code": sandboxed.token}, headers={"HX-Request": "true"})
    assert response.status_code == 429 and int(response.headers["retry-after"]) == 60
    assert "Too many tries" in response.text
    assert sandboxed.status == "sent", "the right code was never checked"
    clock.advance(61)
    response = await client.post("/confirm", data={"code": sandboxed.token}, headers={"HX-Request": "true"})
    assert "is verified" in response.text
    assert await outcomes(db) == ["sent"] + ["invalid_code"] * 4 + ["blocked_ip", "verified"]


# -- per number, across IPs ---------------------------------------------------------------


async def test_a_number_has_one_live_verification_across_ips(
    client_for: Callable[..., httpx.AsyncClient], app: object, clock: FakeClock, settings, db
) -> None:
    async with client_for("198.51.100.1") as first, client_for("198.51.100.2") as second:
        assert (await start_call(first, "0612345678")).status_code == 200
        response = await start_call(second, "06 1234 5678")
        assert response.status_code == 429
        assert "A call to this number is already in progress. Try again in 5 minutes." in response.text
        assert int(response.headers["retry-after"]) == settings.call.timeout
        assert calls_placed(app) == 1
        clock.advance(settings.call.timeout + 1)
        assert (await start_call(second, "0612345678")).status_code == 200, "an expired code frees the number"
    assert calls_placed(app) == 2
    assert await outcomes(db) == ["sent", "blocked_pending", "sent"]
    assert [v.status for v in await verifications(db)] == ["expired", "pending"]


async def test_asking_again_for_the_same_number_reuses_the_call(client: httpx.AsyncClient, app: object, db) -> None:
    await start_call(client, "0612345678")
    response = await start_call(client, "+31 6 12345678")
    assert response.status_code == 200
    assert "We&#39;re already calling +31 6 12345678" in response.text
    assert calls_placed(app) == 1
    assert await outcomes(db) == ["sent", "reused"]


async def test_a_new_number_in_the_same_session_replaces_the_old_call(
    client: httpx.AsyncClient, app: object, db
) -> None:
    await start_call(client, NL_MOBILES[0])
    assert (await start_call(client, NL_MOBILES[1])).status_code == 200
    assert [v.status for v in await verifications(db)] == ["cancelled", "pending"]
    assert [c["status"] for c in app.state.sandbox.calls()] == ["sent", "deleted"]  # type: ignore[attr-defined]


@pytest.mark.parametrize("settings_changes", [{"limit_start_per_number": "1/30seconds;2/10minutes"}])
async def test_distinct_ips_share_a_numbers_limit(
    client_for: Callable[..., httpx.AsyncClient], app: object, clock: FakeClock, db
) -> None:
    clients = [client_for(f"198.51.100.{i}") for i in range(1, 5)]

    async def call_and_give_up(client: httpx.AsyncClient) -> httpx.Response:
        response = await start_call(client, "0612345678")
        await client.post("/restart", headers={"HX-Request": "true"})
        return response

    assert (await call_and_give_up(clients[0])).status_code == 200
    response = await call_and_give_up(clients[1])
    assert response.status_code == 429
    assert "Too many calls to this number. Try again in 30 seconds." in response.text
    clock.advance(31)
    assert (await call_and_give_up(clients[2])).status_code == 200
    clock.advance(31)
    response = await call_and_give_up(clients[3])
    assert (
        response.status_code == 429 and "Try again in 9 minutes" in response.text
    )  # the first of the two calls leaves the window then
    assert calls_placed(app) == 2
    assert await outcomes(db) == ["sent", "cancelled", "blocked_number", "sent", "cancelled", "blocked_number"]
    for client in clients:
        await client.aclose()


async def test_call_me_again_counts_against_the_number(
    client: httpx.AsyncClient, app: object, clock: FakeClock, db
) -> None:
    await start_call(client, "0612345678")
    for _ in range(2):
        clock.advance(31)
        assert (await client.post("/resend", headers={"HX-Request": "true"})).status_code == 200
    clock.advance(31)
    response = await client.post("/resend", headers={"HX-Request": "true"})
    assert response.status_code == 429 and "Too many calls to this number" in response.text
    assert 'name="code"' in response.text, "the code form stays: the last call's code still works"
    assert calls_placed(app) == 3
    assert await outcomes(db) == ["sent", "sent", "sent", "blocked_number"]


# -- overall and per country ------------------------------------------------------------


@pytest.mark.parametrize("settings_changes", [{"limit_calls_global": "3/minute", "limit_start_per_ip": "100/minute"}])
async def test_the_global_ceiling_holds_across_everyone(
    client: httpx.AsyncClient, app: object, clock: FakeClock, db
) -> None:
    for phone in NL_MOBILES[:3]:
        assert (await start_call(client, phone)).status_code == 200
    response = await start_call(client, NL_MOBILES[3])
    assert response.status_code == 429 and "too many calls right now" in unescape(response.text)
    assert calls_placed(app) == 3
    clock.advance(61)
    assert (await start_call(client, NL_MOBILES[4])).status_code == 200
    assert (await outcomes(db)).count("blocked_global") == 1


@pytest.mark.parametrize(
    "settings_changes", [{"limit_calls_per_country": "2/hour", "limit_start_per_ip": "100/minute"}]
)
async def test_the_per_country_ceiling_stops_one_country_only(client: httpx.AsyncClient, app: object, db) -> None:
    for phone in NL_MOBILES[:2]:
        assert (await start_call(client, phone)).status_code == 200
    assert (await start_call(client, NL_MOBILES[2])).status_code == 429
    assert (await start_call(client, "+32 450 00 12 34")).status_code == 200, "Belgium has its own ceiling"
    assert calls_placed(app) == 3


# -- number policy ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("phone", "kind"),
    [
        ("+31 906 1234", "premium rate"),
        ("+44 56 1234 5678", "VoIP, when VoIP is refused"),
        ("+44 70 1234 5678", "personal number"),
        ("+44 76 4012 3456", "pager"),
        ("+44 55 1234 5678", "UAN"),
    ],
)
@pytest.mark.parametrize("settings_changes", [{"allow_voip": False}])
async def test_abuse_magnet_number_types_are_refused(
    client: httpx.AsyncClient, app: object, db, phone: str, kind: str
) -> None:
    response = await start_call(client, phone)
    assert response.status_code == 422, kind
    assert "We can&#39;t call this kind of number" in response.text
    assert calls_placed(app) == 0
    assert await outcomes(db) == ["blocked_number_type"]


SATELLITE_AND_INTERNATIONAL_NETWORKS = ["+870 773 111 632", "+881 6 1234 5678", "+882 13 200 000", "+883 510 012 345"]


@pytest.mark.parametrize("phone", SATELLITE_AND_INTERNATIONAL_NETWORKS)
async def test_satellite_and_international_network_numbers_are_refused_by_default(
    client: httpx.AsyncClient, app: object, db, phone: str
) -> None:
    response = await start_call(client, phone)
    assert response.status_code == 422
    assert "We can&#39;t call this kind of number" in response.text
    assert calls_placed(app) == 0
    assert await outcomes(db) == ["blocked_number_type"]


@pytest.mark.parametrize("settings_changes", [{"allow_international_networks": True}])
async def test_international_network_numbers_can_be_allowed(client_for, app: object) -> None:
    for i, phone in enumerate(SATELLITE_AND_INTERNATIONAL_NETWORKS):
        async with client_for(f"198.51.100.{i + 1}") as client:
            assert (await start_call(client, phone)).status_code == 200
    assert calls_placed(app) == 4


async def test_voip_numbers_are_allowed_by_default(client: httpx.AsyncClient, app: object) -> None:
    assert (await start_call(client, "+44 56 1234 5678")).status_code == 200


async def test_a_spread_of_calls_into_a_premium_range_places_none(
    client_for: Callable[..., httpx.AsyncClient], app: object, db
) -> None:
    for i in range(20):
        async with client_for(f"198.51.100.{i + 1}") as client:
            response = await start_call(client, f"+31 906 12{i:02d}")
            assert response.status_code == 422
    assert calls_placed(app) == 0
    assert set(await outcomes(db)) == {"blocked_number_type"}


@pytest.mark.parametrize("settings_changes", [{"allowed_countries": ("NL",)}])
async def test_the_country_allowlist(client: httpx.AsyncClient, app: object, db) -> None:
    response = await start_call(client, "+32 450 00 12 34")
    assert response.status_code == 422 and "We can&#39;t call numbers in this country." in response.text
    assert (await start_call(client, "0612345678")).status_code == 200
    assert await outcomes(db) == ["blocked_country", "sent"]


@pytest.mark.parametrize("settings_changes", [{"denied_countries": ("BE",)}])
async def test_denied_countries(client: httpx.AsyncClient, app: object, db) -> None:
    assert (await start_call(client, "+32 450 00 12 34")).status_code == 422
    assert calls_placed(app) == 0
    assert await outcomes(db) == ["blocked_country"]


# -- the operators' deny list ----------------------------------------------------------------


async def deny(db, text: str) -> None:
    async with db() as session:
        await denylist.add(session, denylist.parse_entry(text), reason="test", by="test", now=datetime.now(UTC))


@pytest.mark.parametrize("entry", ["+31612345678", "+316123*"])
async def test_denied_numbers_and_prefixes_are_refused(client: httpx.AsyncClient, app: object, db, entry: str) -> None:
    await deny(db, entry)
    response = await start_call(client, "0612345678")
    assert response.status_code == 422 and "We can&#39;t place this call." in response.text
    assert (await start_call(client, NL_MOBILES[0])).status_code == 200
    assert calls_placed(app) == 1
    assert await outcomes(db) == ["blocked_denylist", "sent"]


async def test_a_denied_network_is_refused_before_its_form_is_read(client_for, app: object, db) -> None:
    await deny(db, "203.0.113.0/24")
    async with client_for("203.0.113.77") as denied, client_for("198.51.100.7") as other:
        response = await start_call(denied, "0612345678")
        assert response.status_code == 422 and response.headers["hx-reswap"] == "none"
        assert (await start_call(other, "0612345678")).status_code == 200
    [refused, sent] = await attempts(db)
    assert (refused.outcome, refused.ip, refused.number) == ("blocked_denylist", "203.0.113.77", None)
    assert sent.outcome == "sent"


# -- the limiter's storage -----------------------------------------------------------------------


@pytest.mark.parametrize("settings_changes", [{"ratelimit_storage_url": "redis://127.0.0.1:1"}])
async def test_limiter_down_fails_closed(client: httpx.AsyncClient, app: object, db) -> None:
    response = await start_call(client, "0612345678")
    assert response.status_code == 503
    assert "We can&#39;t place calls right now" in response.text
    assert calls_placed(app) == 0
    assert await outcomes(db) == ["limiter_unavailable"]


@pytest.mark.parametrize(
    "settings_changes", [{"ratelimit_storage_url": "redis://127.0.0.1:1", "ratelimit_fail_open": True}]
)
async def test_limiter_down_can_fail_open(client: httpx.AsyncClient, app: object, db) -> None:
    assert (await start_call(client, "0612345678")).status_code == 200
    assert calls_placed(app) == 1


# -- who the client is -----------------------------------------------------------------------------


async def test_a_spoofed_forwarded_for_from_an_untrusted_peer_changes_nothing(
    client: httpx.AsyncClient, app: object, db
) -> None:
    for i, phone in enumerate(NL_MOBILES[:6]):
        response = await client.post(
            "/verify",
            data={"country": "NL", "phone": phone},
            headers={"HX-Request": "true", "X-Forwarded-For": f"192.0.2.{i + 1}"},
        )
    assert response.status_code == 429, "still one client, 203.0.113.10"
    assert {row.ip for row in await attempts(db)} == {"203.0.113.10"}


@pytest.mark.parametrize("settings_changes", [{"trusted_proxies": ("203.0.113.10",)}])
async def test_a_trusted_proxy_says_who_the_client_is(client: httpx.AsyncClient, app: object, db) -> None:
    for i, phone in enumerate(NL_MOBILES[:6]):
        response = await client.post(
            "/verify",
            data={"country": "NL", "phone": phone},
            headers={"HX-Request": "true", "X-Forwarded-For": f"192.0.2.{i + 1}"},
        )
        assert response.status_code == 200
    assert [row.ip for row in await attempts(db) if row.kind == "start"] == [f"192.0.2.{i + 1}" for i in range(6)]
