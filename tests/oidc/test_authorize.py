"""The authorization endpoint's checks, and completing or cancelling a request."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.oidc.support import ISSUER, NUMBER, SHOP_CALLBACK, Registered, issue_code, query, redirect_params, register
from tests.support import FakeClock, attempts
from webapp.models import OidcAuthorizationRequest
from webapp.oidc import authorize, completion
from webapp.oidc.provider import Provider

IP = "203.0.113.10"
#: A state no encoder would leave alone: spaces, reserved characters, percent signs, non-ASCII.
AWKWARD_STATE = "a b+c/d?e=f&g#h%20i%zz;ü😀"


async def check(provider: Provider, raw: bytes) -> authorize.ErrorPage | authorize.Redirect | authorize.Accepted:
    return await authorize.check(provider, raw, issuer=ISSUER, ip=IP)


@pytest.mark.parametrize("client_id", ["unknown-client", "", None])
async def test_an_unknown_or_missing_client_gets_the_error_page(
    provider: Provider,
    shop: Registered,
    client_id: str | None,
) -> None:
    result = await check(provider, query(shop, client_id=client_id))
    assert isinstance(result, authorize.ErrorPage)


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "https://evil.example/callback",
        SHOP_CALLBACK + "/more",  # no prefixes
        SHOP_CALLBACK + "?x=1",  # no extra query
        SHOP_CALLBACK.upper(),  # exact string comparison
        "",
        None,
    ],
)
async def test_a_redirect_uri_not_registered_for_the_client_gets_the_error_page(
    provider: Provider,
    shop: Registered,
    redirect_uri: str | None,
) -> None:
    result = await check(provider, query(shop, redirect_uri=redirect_uri))
    assert isinstance(result, authorize.ErrorPage)
    assert "Example shop" in result.message


async def test_a_redirect_uri_of_another_client_gets_the_error_page(
    provider: Provider,
    shop: Registered,
    other_site: Registered,
) -> None:
    assert isinstance(await check(provider, query(shop, redirect_uri=other_site.redirect_uri)), authorize.ErrorPage)


async def test_a_repeated_client_id_gets_the_error_page(provider: Provider, shop: Registered) -> None:
    raw = query(shop) + b"&client_id=" + shop.client_id.encode()
    assert isinstance(await check(provider, raw), authorize.ErrorPage)


async def test_a_query_that_is_not_utf8_gets_the_error_page(provider: Provider, shop: Registered) -> None:
    assert isinstance(await check(provider, query(shop) + b"&state=%FF"), authorize.ErrorPage)


async def test_the_error_page_over_http_redirects_nowhere(client: httpx.AsyncClient, shop: Registered) -> None:
    response = await client.get("/oidc/authorize?" + query(shop, redirect_uri="https://evil.example/cb").decode())
    assert response.status_code == 400
    assert "location" not in response.headers
    assert "not passed on" in response.text and "evil.example" not in response.text
    assert response.headers["cache-control"] == "no-store"


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"code_challenge": None, "code_challenge_method": None}, "invalid_request"),
        ({"code_challenge_method": None}, "invalid_request"),
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge": "short"}, "invalid_request"),
        ({"scope": "phone"}, "invalid_scope"),
        ({"scope": None}, "invalid_scope"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"response_type": None}, "invalid_request"),
        ({"response_mode": "fragment"}, "invalid_request"),
        ({"request": "eyJhbGciOiJub25lIn0.e30."}, "request_not_supported"),
        ({"prompt": "none"}, "login_required"),
        ({"prompt": "none login"}, "invalid_request"),
    ],
)
async def test_errors_after_the_redirect_uri_is_trusted_go_back_to_it(
    provider: Provider,
    shop: Registered,
    changes: dict[str, str | None],
    error: str,
) -> None:
    result = await check(provider, query(shop, **changes))
    assert isinstance(result, authorize.Redirect)
    assert result.url.startswith(SHOP_CALLBACK + "?")
    params = redirect_params(result.url)
    assert params["error"] == [error] and params["error_description"][0]
    assert params["state"] == ["af0ifjsldkj"] and params["iss"] == [ISSUER]


async def test_a_request_without_pkce_is_told_pkce_is_required(provider: Provider, shop: Registered) -> None:
    result = await check(provider, query(shop, code_challenge=None, code_challenge_method=None))
    assert isinstance(result, authorize.Redirect)
    assert redirect_params(result.url)["error_description"] == [
        "PKCE is required: send code_challenge with code_challenge_method=S256."
    ]


async def test_a_repeated_parameter_goes_back_as_invalid_request(provider: Provider, shop: Registered) -> None:
    result = await check(provider, query(shop) + b"&scope=openid")
    assert isinstance(result, authorize.Redirect)
    assert redirect_params(result.url)["error"] == ["invalid_request"]


async def test_an_error_redirect_over_http_is_a_303_with_state_and_iss(
    client: httpx.AsyncClient,
    shop: Registered,
) -> None:
    response = await client.get("/oidc/authorize?" + query(shop, prompt="none").decode())
    assert response.status_code == 303
    params = redirect_params(response.headers["location"])
    assert params["error"] == ["login_required"] and params["state"] == ["af0ifjsldkj"]
    assert params["iss"] == ["http://testserver"]


async def test_state_is_echoed_exactly_on_an_error_redirect(provider: Provider, shop: Registered) -> None:
    result = await check(provider, query(shop, prompt="none", state=AWKWARD_STATE))
    assert isinstance(result, authorize.Redirect)
    assert redirect_params(result.url)["state"] == [AWKWARD_STATE]


async def test_state_is_echoed_exactly_with_the_code(provider: Provider, shop: Registered, clock: FakeClock) -> None:
    issued = await issue_code(provider, shop, clock, state=AWKWARD_STATE)
    params = redirect_params(issued.url)
    assert params["state"] == [AWKWARD_STATE] and params["iss"] == [ISSUER]
    assert len(params["code"][0]) >= 43  # 256 random bits, base64url


async def test_no_state_sent_means_none_returned(provider: Provider, shop: Registered, clock: FakeClock) -> None:
    assert "state" not in redirect_params((await issue_code(provider, shop, clock, state=None)).url)


async def test_an_empty_state_is_returned_empty(provider: Provider, shop: Registered, clock: FakeClock) -> None:
    assert redirect_params((await issue_code(provider, shop, clock, state="")).url)["state"] == [""]


async def test_a_registered_redirect_uri_keeps_its_own_query(
    provider: Provider,
    db: async_sessionmaker[AsyncSession],
    clock: FakeClock,
) -> None:
    site = await register(db, clock, "Query site", "https://q.example/cb?tenant=7")
    issued = await issue_code(provider, site, clock)
    assert issued.url.startswith("https://q.example/cb?")
    params = redirect_params(issued.url)
    assert params["tenant"] == ["7"] and params["code"] == [issued.code]


async def test_a_valid_request_is_stored_with_its_parameters(
    provider: Provider,
    shop: Registered,
    db: async_sessionmaker[AsyncSession],
    clock: FakeClock,
) -> None:
    result = await check(provider, query(shop, login_hint="+31 6 12345678"))
    assert isinstance(result, authorize.Accepted)
    assert result.client_name == "Example shop" and result.login_hint == "+31 6 12345678"
    async with db() as session:
        stored = await session.get(OidcAuthorizationRequest, result.request_id)
    assert stored is not None and stored.client_id == shop.client_id and stored.nonce == "n-0S6_WzA2Mj"
    assert stored.scope == "openid phone" and stored.expires_at == clock() + timedelta(seconds=1800)
    assert len(result.request_id) >= 43


async def test_a_valid_request_over_http_goes_on_to_the_page_with_its_id_in_the_session(
    client: httpx.AsyncClient,
    shop: Registered,
    db: async_sessionmaker[AsyncSession],
) -> None:
    response = await client.get("/oidc/authorize?" + query(shop).decode())
    assert response.status_code == 303 and urlsplit(response.headers["location"]).path == "/"
    assert "voice2fa_session" in response.cookies
    async with db() as session:
        [stored] = (await session.scalars(select(OidcAuthorizationRequest))).all()
    assert stored.finished_at is None


async def test_a_request_completes_once_only(provider: Provider, shop: Registered, clock: FakeClock) -> None:
    accepted = await check(provider, query(shop))
    assert isinstance(accepted, authorize.Accepted)
    await completion.complete(provider, accepted.request_id, number=NUMBER, verified_at=clock(), issuer=ISSUER, ip=IP)
    with pytest.raises(completion.HandoffError):
        await completion.complete(
            provider, accepted.request_id, number=NUMBER, verified_at=clock(), issuer=ISSUER, ip=IP
        )


async def test_a_verification_from_before_the_request_does_not_complete_it(
    provider: Provider,
    shop: Registered,
    clock: FakeClock,
) -> None:
    verified_at = clock()
    clock.advance(5)
    accepted = await check(provider, query(shop))
    assert isinstance(accepted, authorize.Accepted)
    with pytest.raises(completion.HandoffError):
        await completion.complete(
            provider, accepted.request_id, number=NUMBER, verified_at=verified_at, issuer=ISSUER, ip=IP
        )


async def test_an_expired_request_does_not_complete(provider: Provider, shop: Registered, clock: FakeClock) -> None:
    accepted = await check(provider, query(shop))
    assert isinstance(accepted, authorize.Accepted)
    clock.advance(1801)
    with pytest.raises(completion.HandoffError):
        await completion.complete(
            provider, accepted.request_id, number=NUMBER, verified_at=clock(), issuer=ISSUER, ip=IP
        )


async def test_an_unknown_request_does_not_complete(provider: Provider, clock: FakeClock) -> None:
    with pytest.raises(completion.HandoffError):
        await completion.complete(provider, "no-such-request", number=NUMBER, verified_at=clock(), issuer=ISSUER, ip=IP)


async def test_cancel_goes_back_with_access_denied_state_and_iss(provider: Provider, shop: Registered) -> None:
    accepted = await check(provider, query(shop, state=AWKWARD_STATE))
    assert isinstance(accepted, authorize.Accepted)
    url = await completion.cancel(provider, accepted.request_id, issuer=ISSUER, ip=IP)
    assert url.startswith(SHOP_CALLBACK + "?")
    params = redirect_params(url)
    assert params["error"] == ["access_denied"] and params["state"] == [AWKWARD_STATE] and params["iss"] == [ISSUER]


async def test_a_cancelled_request_can_neither_complete_nor_cancel_again(
    provider: Provider,
    shop: Registered,
    clock: FakeClock,
) -> None:
    accepted = await check(provider, query(shop))
    assert isinstance(accepted, authorize.Accepted)
    await completion.cancel(provider, accepted.request_id, issuer=ISSUER, ip=IP)
    with pytest.raises(completion.HandoffError):
        await completion.complete(
            provider, accepted.request_id, number=NUMBER, verified_at=clock(), issuer=ISSUER, ip=IP
        )
    with pytest.raises(completion.HandoffError):
        await completion.cancel(provider, accepted.request_id, issuer=ISSUER, ip=IP)


async def test_an_expired_request_can_still_be_cancelled(
    provider: Provider, shop: Registered, clock: FakeClock
) -> None:
    """The site learns the person gave up, even after the request's time ran out."""
    accepted = await check(provider, query(shop))
    assert isinstance(accepted, authorize.Accepted)
    clock.advance(1801)
    params = redirect_params(await completion.cancel(provider, accepted.request_id, issuer=ISSUER, ip=IP))
    assert params["error"] == ["access_denied"]


async def test_every_authorization_decision_is_logged_with_a_reason(
    provider: Provider,
    shop: Registered,
    db: async_sessionmaker[AsyncSession],
) -> None:
    await check(provider, query(shop, client_id="nobody"))
    await check(provider, query(shop, redirect_uri="https://evil.example/cb"))
    await check(provider, query(shop, code_challenge=None))
    accepted = await check(provider, query(shop))
    assert isinstance(accepted, authorize.Accepted)
    await completion.cancel(provider, accepted.request_id, issuer=ISSUER, ip=IP)
    rows = [(a.kind, a.outcome, a.client_id, (a.reason or "").split(":")[0]) for a in await attempts(db)]
    assert rows == [
        ("handoff", "oidc_error", None, "invalid_client"),
        ("handoff", "oidc_error", shop.client_id, "invalid_request"),
        ("handoff", "oidc_error", shop.client_id, "invalid_request"),
        ("handoff", "handoff_started", shop.client_id, ""),
        ("handoff", "handoff_cancelled", shop.client_id, ""),
    ]
    assert all(a.ip == IP for a in await attempts(db))
