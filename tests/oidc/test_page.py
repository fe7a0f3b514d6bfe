"""The hand-off through the verification page, over HTTP: for whom, the way back, and what never completes it."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.applications import Starlette

from tests.oidc.support import (
    ISSUER,
    NUMBER,
    SHOP_CALLBACK,
    Issued,
    Registered,
    begin_handoff,
    exchange,
    page_tag,
    query,
    redirect_params,
    register,
    type_code,
    verified_claims,
)
from tests.support import FakeClock, attempts, call_me, spoken_code, text_of, verifications
from webapp.models import OidcAuthorizationCode, OidcAuthorizationRequest

STATE = "af0ifjsldkj"


async def codes_issued(db: async_sessionmaker[AsyncSession]) -> int:
    async with db() as session:
        return len((await session.scalars(select(OidcAuthorizationCode))).all())


async def stored_request(db: async_sessionmaker[AsyncSession]) -> OidcAuthorizationRequest:
    async with db() as session:
        [found] = (await session.scalars(select(OidcAuthorizationRequest))).all()
    return found


def form_action(response: httpx.Response) -> str:
    """The form-action directive of a response's CSP."""
    [directive] = [
        d.strip() for d in response.headers["content-security-policy"].split(";") if d.strip().startswith("form-action")
    ]
    return directive


# -- the page says for whom ------------------------------------------------------------------


async def test_the_page_says_whom_the_number_is_for_and_offers_to_cancel(
    client: httpx.AsyncClient,
    shop: Registered,
) -> None:
    await begin_handoff(client, shop)
    page = await client.get("/")
    assert "Verify your phone number for Example shop" in text_of(page.text)
    assert "<title>Verify your phone number for Example shop · voice2fa</title>" in page.text
    assert '<form class="handoff-cancel" method="post" action="/oidc/cancel">' in page.text
    assert "Cancel and go back" in page.text


async def test_the_login_hint_fills_in_the_number(client: httpx.AsyncClient, shop: Registered) -> None:
    await begin_handoff(client, shop, login_hint="+31 6 12345678")
    assert 'value="+31 6 12345678" placeholder="06 12345678"' in (await client.get("/")).text


async def test_the_client_name_and_login_hint_are_text_on_the_page(
    client: httpx.AsyncClient,
    db: async_sessionmaker[AsyncSession],
    clock: FakeClock,
) -> None:
    site = await register(db, clock, '<b hx-get="/x">Shop</b>', SHOP_CALLBACK)
    await begin_handoff(client, site, login_hint='"><script src=/static/app.js></script>')
    page = (await client.get("/")).text
    assert "<b hx-get" not in page and "&lt;b hx-get=&#34;/x&#34;&gt;Shop&lt;/b&gt;" in page
    assert "<script src=/static/app.js>" not in page and "&#34;&gt;&lt;script" in page


async def test_a_page_of_the_handoff_lets_its_forms_go_to_the_site_and_nowhere_else(
    client: httpx.AsyncClient,
    shop: Registered,
) -> None:
    standalone = await client.get("/")
    assert form_action(standalone) == "form-action 'self'"
    await begin_handoff(client, shop)
    assert form_action(await client.get("/")) == "form-action 'self' https://shop.example"
    assert form_action(await call_me(client, "nonsense")) == "form-action 'self' https://shop.example"


async def test_a_loopback_client_keeps_its_port_in_the_form_action(
    client: httpx.AsyncClient,
    other_site: Registered,
) -> None:
    await begin_handoff(client, other_site)
    assert form_action(await client.get("/")) == "form-action 'self' http://127.0.0.1:5000"


# -- a verification goes back to the site --------------------------------------------------------


async def test_without_javascript_a_verification_goes_back_to_the_site_with_code_state_and_iss(
    client: httpx.AsyncClient,
    app: Starlette,
    shop: Registered,
    clock: FakeClock,
    site_server: httpx.AsyncClient,
) -> None:
    pkce = await begin_handoff(client, shop)
    await call_me(client)
    response = await type_code(client, spoken_code(app))
    assert response.status_code == 303 and response.headers["location"].startswith(SHOP_CALLBACK + "?")
    assert response.headers["cache-control"] == "no-store"
    params = redirect_params(response.headers["location"])
    assert params["state"] == [STATE] and params["iss"] == [ISSUER] and len(params["code"][0]) >= 43
    tokens = await exchange(site_server, shop, Issued(params["code"][0], pkce, response.headers["location"]))
    assert tokens.status_code == 200
    claims = await verified_claims(site_server, tokens.json()["id_token"], shop, clock)
    assert claims["phone_number"] == NUMBER and claims["phone_number_verified"] is True


async def test_with_htmx_a_verification_goes_back_to_the_site_by_hx_redirect(
    htmx: httpx.AsyncClient,
    app: Starlette,
    shop: Registered,
) -> None:
    await begin_handoff(htmx, shop)
    await call_me(htmx)
    response = await type_code(htmx, spoken_code(app))
    assert response.status_code == 200 and "location" not in response.headers
    params = redirect_params(response.headers["hx-redirect"])
    assert response.headers["hx-redirect"].startswith(SHOP_CALLBACK + "?")
    assert params["state"] == [STATE] and params["iss"] == [ISSUER] and params["code"]


async def test_after_going_back_the_page_is_the_standalone_page_again(
    client: httpx.AsyncClient,
    app: Starlette,
    shop: Registered,
) -> None:
    await begin_handoff(client, shop)
    await call_me(client)
    await type_code(client, spoken_code(app))
    page = await client.get("/")
    assert "Example shop" not in page.text and 'name="phone"' in page.text
    assert form_action(page) == "form-action 'self'"


async def test_the_handoffs_attempts_rows_name_the_site(
    client_for: Callable[..., httpx.AsyncClient],
    app: Starlette,
    shop: Registered,
    clock: FakeClock,
    db: async_sessionmaker[AsyncSession],
) -> None:
    async with client_for("198.51.100.1") as standalone:
        await call_me(standalone, "06 12345679")  # the standalone page's own row names no site
    async with client_for() as person:
        await begin_handoff(person, shop)
        await call_me(person)
        await type_code(person, "000000" if spoken_code(app) != "000000" else "111111")
        clock.advance(31)
        await person.post("/resend")
        await type_code(person, spoken_code(app))
    rows = [(a.kind, a.outcome, a.client_id) for a in await attempts(db)]
    assert rows == [
        ("start", "sent", None),
        ("handoff", "handoff_started", shop.client_id),
        ("start", "sent", shop.client_id),
        ("check", "wrong_code", shop.client_id),
        ("resend", "sent", shop.client_id),
        ("check", "verified", shop.client_id),
        ("handoff", "code_issued", shop.client_id),
    ]


# -- cancelling -------------------------------------------------------------------------------------


async def test_cancel_goes_back_with_access_denied_state_and_iss_and_ends_the_call(
    client: httpx.AsyncClient,
    shop: Registered,
    db: async_sessionmaker[AsyncSession],
) -> None:
    await begin_handoff(client, shop)
    await call_me(client)
    page = (await client.get("/")).text
    response = await client.post("/oidc/cancel", data={"handoff": page_tag(page)})
    assert response.status_code == 303
    params = redirect_params(response.headers["location"])
    assert response.headers["location"].startswith(SHOP_CALLBACK + "?")
    assert params["error"] == ["access_denied"] and params["state"] == [STATE] and params["iss"] == [ISSUER]
    [verification] = await verifications(db)
    assert verification.status == "cancelled"
    assert "Example shop" not in (await client.get("/")).text
    assert ("handoff", "handoff_cancelled", shop.client_id) in [
        (a.kind, a.outcome, a.client_id) for a in await attempts(db)
    ]


async def test_cancel_from_a_page_rendered_for_another_handoff_shows_this_ones_page(
    client: httpx.AsyncClient,
    shop: Registered,
    db: async_sessionmaker[AsyncSession],
) -> None:
    await begin_handoff(client, shop)
    response = await client.post("/oidc/cancel", data={"handoff": "0" * 16})
    assert response.status_code == 303 and response.headers["location"] == "/"
    assert (await stored_request(db)).finished_at is None


async def test_cancel_without_a_handoff_says_there_is_nothing_to_go_back_to(client: httpx.AsyncClient) -> None:
    response = await client.post("/oidc/cancel", data={})
    assert response.status_code == 409 and "That sign-in has ended" in response.text


async def test_an_unreadable_cancel_form_is_a_400_and_a_row_naming_the_site(
    client: httpx.AsyncClient,
    shop: Registered,
    db: async_sessionmaker[AsyncSession],
) -> None:
    await begin_handoff(client, shop)
    for path in ("/oidc/cancel", "/oidc/continue"):
        response = await client.post(
            path, content=b"handoff=\xff", headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
        assert response.status_code == 400
    assert (await stored_request(db)).finished_at is None
    bad = [(a.kind, a.outcome, a.client_id, a.count) for a in await attempts(db) if a.outcome == "bad_request"]
    assert bad == [("handoff", "bad_request", shop.client_id, 2)], "both folded: same kind, client and site"


# -- what never completes a hand-off ---------------------------------------------------------------


async def test_a_verification_from_before_the_request_began_does_not_complete_it(
    client_for: Callable[..., httpx.AsyncClient],
    app: Starlette,
    shop: Registered,
    clock: FakeClock,
    db: async_sessionmaker[AsyncSession],
) -> None:
    async with client_for() as person:
        await call_me(person)
        await type_code(person, spoken_code(app))  # verified on the standalone page: the session holds the result
        clock.advance(5)
        await begin_handoff(person, shop)
        with_old_result = person.cookies["voice2fa_session"]
        page = await person.get("/")
        assert 'name="phone"' in page.text and "Continue to" not in page.text
    # The cookie as it was before the page let go of the old result, posted straight to "Continue".
    async with client_for(cookies={"voice2fa_session": with_old_result}) as forcing:
        forced = await forcing.post("/oidc/continue", data={"handoff": page_tag(page.text)})
    assert forced.status_code == 409 and "location" not in forced.headers
    assert "Verify your number again to continue." in text_of(forced.text)
    assert await codes_issued(db) == 0 and (await stored_request(db)).finished_at is None
    assert [(a.outcome, a.reason) for a in await attempts(db)][-1] == (
        "oidc_error",
        "access_denied: verified before the request began",
    )


async def test_a_replayed_cookie_of_a_finished_verification_never_completes_a_handoff(
    client_for: Callable[..., httpx.AsyncClient],
    app: Starlette,
    shop: Registered,
    db: async_sessionmaker[AsyncSession],
) -> None:
    """Issue 7, item 11: an old cookie that once verified a number is no proof for a new hand-off."""
    async with client_for() as person:
        await call_me(person)
        old_cookie = person.cookies["voice2fa_session"]
        await type_code(person, spoken_code(app))

    async def replay(cookie: str, method: str, path: str, **kwargs: object) -> httpx.Response:
        """One request from another machine, with `cookie` as its session cookie."""
        headers = kwargs.pop("headers", {})
        async with client_for("198.51.100.9", cookies={"voice2fa_session": cookie}, headers=headers) as replayer:
            return await replayer.request(method, path, **kwargs)  # type: ignore[arg-type]

    authorized = await replay(old_cookie, "GET", "/oidc/authorize?" + query(shop).decode())
    assert authorized.status_code == 303
    both = authorized.cookies["voice2fa_session"]  # the old verification and the new request
    tag = page_tag((await replay(both, "GET", "/")).text)
    for code, headers in (("000000", {}), ("", {}), (spoken_code(app), {}), (spoken_code(app), {"HX-Request": "true"})):
        response = await replay(
            both, "POST", "/confirm", data={"code": code, "call": "1", "handoff": tag}, headers=headers
        )
        assert response.status_code == 409 and "location" not in response.headers
        assert "hx-redirect" not in response.headers
        assert "To continue to Example shop, verify your number again." in text_of(response.text)
    assert await codes_issued(db) == 0 and (await stored_request(db)).finished_at is None
    # The four identical refusals are one row counting four requests (a flood folds, webapp.attempt_writer).
    assert [(a.outcome, a.client_id, a.count) for a in await attempts(db)][-1] == ("replayed", shop.client_id, 4)


@pytest.mark.parametrize("settings_changes", [{"oidc_request_lifetime": 60}])
async def test_a_request_that_expired_is_not_completed_and_the_page_says_what_to_do(
    client: httpx.AsyncClient,
    app: Starlette,
    shop: Registered,
    clock: FakeClock,
    db: async_sessionmaker[AsyncSession],
) -> None:
    await begin_handoff(client, shop)
    await call_me(client)
    clock.advance(61)  # the request's 60 s are over; the code's 300 s are not
    page = await client.get("/")
    assert "This sign-in has timed out." in text_of(page.text) and "Cancel and go back" in page.text
    response = await type_code(client, spoken_code(app))
    assert response.status_code == 409 and "location" not in response.headers
    assert "This sign-in has ended. Go back to the site and start again." in text_of(response.text)
    assert await codes_issued(db) == 0
    cancelled = await client.post("/oidc/cancel", data={"handoff": page_tag(response.text)})
    assert redirect_params(cancelled.headers["location"])["error"] == ["access_denied"]


async def test_a_request_used_in_another_tab_is_not_completed_twice(
    client_for: Callable[..., httpx.AsyncClient],
    app: Starlette,
    shop: Registered,
    db: async_sessionmaker[AsyncSession],
) -> None:
    async with client_for() as tab:
        await begin_handoff(tab, shop)
        await call_me(tab)
        cookie = tab.cookies["voice2fa_session"]
        await type_code(tab, spoken_code(app))
    async with client_for() as other_tab:  # the same session, as it was before the first tab went back
        other_tab.cookies.set("voice2fa_session", cookie)
        page = await other_tab.get("/")
        assert "That sign-in has ended." in text_of(page.text) and "Example shop" not in page.text
    assert await codes_issued(db) == 1


# -- a form from a page rendered before the hand-off -----------------------------------------------------


async def test_a_code_form_rendered_before_the_handoff_gets_continue_instead_of_a_redirect(
    client: httpx.AsyncClient,
    app: Starlette,
    shop: Registered,
    db: async_sessionmaker[AsyncSession],
) -> None:
    await call_me(client)  # this tab's code form has no hand-off tag: its CSP would stop a 303 to the site
    await begin_handoff(client, shop)
    response = await client.post("/confirm", data={"code": spoken_code(app), "call": "1"})
    assert response.status_code == 303 and response.headers["location"] == "/"
    page = await client.get("/")
    assert "Continue to Example shop" in page.text and "+31 6 12345678 is verified." in text_of(page.text)
    assert form_action(page) == "form-action 'self' https://shop.example"
    assert await codes_issued(db) == 0
    onward = await client.post("/oidc/continue", data={"handoff": page_tag(page.text)})
    assert onward.status_code == 303 and onward.headers["location"].startswith(SHOP_CALLBACK + "?code=")
    assert await codes_issued(db) == 1


# -- limits ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("settings_changes", [{"limit_start_per_ip": "2/minute"}])
async def test_the_per_ip_limit_holds_during_a_handoff(
    htmx: httpx.AsyncClient,
    app: Starlette,
    shop: Registered,
    db: async_sessionmaker[AsyncSession],
) -> None:
    await begin_handoff(htmx, shop)
    assert (await call_me(htmx, "06 12345678")).status_code == 200
    assert (await call_me(htmx, "06 12345679")).status_code == 200
    refused = await call_me(htmx, "06 12345670")
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0
    assert [(a.outcome, a.client_id) for a in await attempts(db)][-1] == ("blocked_ip", shop.client_id)
    assert len(app.state.sandbox.calls()) == 2


@pytest.mark.parametrize("settings_changes", [{"limit_start_per_number": "1/10minutes"}])
async def test_the_per_number_limit_holds_across_handoffs(
    client_for: Callable[..., httpx.AsyncClient],
    app: Starlette,
    shop: Registered,
    other_site: Registered,
    db: async_sessionmaker[AsyncSession],
) -> None:
    async with client_for("198.51.100.1") as first:
        await begin_handoff(first, shop)
        await call_me(first)
        await first.post("/restart")
    async with client_for("198.51.100.2") as second:
        await begin_handoff(second, other_site)
        refused = await call_me(second)
    assert refused.status_code == 429
    assert [(a.outcome, a.client_id) for a in await attempts(db)][-1] == ("blocked_number", other_site.client_id)
    assert len(app.state.sandbox.calls()) == 1


@pytest.mark.parametrize("settings_changes", [{"limit_authorize_per_ip": "3/minute"}])
async def test_the_authorization_endpoint_stores_a_limited_number_of_requests_per_ip(
    client_for: Callable[..., httpx.AsyncClient],
    shop: Registered,
    clock: FakeClock,
    db: async_sessionmaker[AsyncSession],
) -> None:
    async with client_for("198.51.100.7") as bot:
        for _ in range(3):
            await begin_handoff(bot, shop)
        refused = await bot.get("/oidc/authorize?client_id=" + shop.client_id)
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0
        assert "location" not in refused.headers and "Too many sign-ins" in refused.text
        async with client_for("198.51.100.8") as someone_else:
            await begin_handoff(someone_else, shop)
        clock.advance(61)
        await begin_handoff(bot, shop)
    async with db() as session:
        assert len((await session.scalars(select(OidcAuthorizationRequest))).all()) == 5
    assert [(a.kind, a.outcome) for a in await attempts(db)][3] == ("handoff", "blocked_ip")


@pytest.mark.parametrize("settings_changes", [{"limit_authorize_per_ip": "1/minute"}])
async def test_the_authorization_limit_counts_an_ipv6_client_by_its_network(
    client_for: Callable[..., httpx.AsyncClient],
    shop: Registered,
) -> None:
    async with client_for("2001:db8:1:2::10") as first:
        await begin_handoff(first, shop)
    async with client_for("2001:db8:1:2::99") as same_network:
        assert (await same_network.get("/oidc/authorize?client_id=" + shop.client_id)).status_code == 429


async def test_continue_without_a_handoff_changes_nothing(
    client: httpx.AsyncClient,
    app: Starlette,
) -> None:
    await call_me(client)
    response = await client.post("/oidc/continue", data={})
    assert response.status_code == 303 and urlsplit(response.headers["location"]).path == "/"
    assert "Answer the call" in (await client.get("/")).text
