"""The token endpoint: a code, its PKCE verifier and the client's credentials for an ID token."""

from __future__ import annotations

import base64
import json
import warnings

import httpx
import pytest
from authlib.deprecate import AuthlibDeprecationWarning
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import BadSignatureError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.applications import Starlette
from starlette.types import ASGIApp

from tests.oidc.support import (
    ISSUER,
    NUMBER,
    Registered,
    exchange,
    issue_code,
    jwks,
    new_pkce,
    redirect_params,
    register,
    token_form,
    verified_claims,
)
from tests.support import FakeClock, attempts
from webapp.models import OidcAccessToken, OidcAuthorizationCode, OidcClient
from webapp.oidc import authorize, completion
from webapp.oidc.provider import Provider

with warnings.catch_warnings():
    # Authlib 1.9 would rather its httpx client ran on httpx2; it still works on httpx, which the app uses.
    warnings.simplefilter("ignore", AuthlibDeprecationWarning)
    from authlib.integrations.httpx_client import AsyncOAuth2Client


async def test_an_oidc_client_library_completes_the_code_flow(
    running: tuple[Starlette, ASGIApp],
    provider: Provider,
    shop: Registered,
    clock: FakeClock,
) -> None:
    """Authlib's own OAuth 2.0 client builds the request (PKCE S256, state) and exchanges the code."""
    transport = httpx.ASGITransport(app=running[1], client=("198.51.100.20", 40000))
    async with AsyncOAuth2Client(
        shop.client_id,
        shop.secret,
        scope="openid phone",
        redirect_uri=shop.redirect_uri,
        code_challenge_method="S256",
        token_endpoint_auth_method="client_secret_basic",
        transport=transport,
        base_url=ISSUER,
    ) as site:
        verifier = "v" * 64
        url, state = site.create_authorization_url(ISSUER + "/oidc/authorize", code_verifier=verifier, nonce="n-42")
        accepted = await authorize.check(provider, url.split("?", 1)[1].encode(), issuer=ISSUER, ip="203.0.113.10")
        assert isinstance(accepted, authorize.Accepted) and accepted.client_name == "Example shop"
        back = await completion.complete(
            provider, accepted.request_id, number=NUMBER, verified_at=clock(), issuer=ISSUER, ip="203.0.113.10"
        )
        assert redirect_params(back)["state"] == [state]
        token = await site.fetch_token(ISSUER + "/oidc/token", authorization_response=back, code_verifier=verifier)
        claims = await verified_claims(site, token["id_token"], shop, clock)
    # Authlib's client-side rules for an ID token from the code flow: nonce, at_hash, auth_time, amr.
    params = {"nonce": "n-42", "client_id": shop.client_id, "access_token": token["access_token"]}
    CodeIDToken(claims, {"alg": "RS256"}, {}, params).validate(now=int(clock().timestamp()))
    assert token["token_type"] == "Bearer" and token["expires_in"] == 300
    assert claims["phone_number"] == NUMBER and claims["phone_number_verified"] is True
    assert claims["amr"] == ["tel"] and claims["nonce"] == "n-42"
    assert claims["auth_time"] == int(clock().timestamp())
    assert claims["exp"] - claims["iat"] == 300  # minutes, not hours


async def test_the_id_token_names_its_key_and_is_rs256(
    provider: Provider,
    shop: Registered,
    clock: FakeClock,
    site_server: httpx.AsyncClient,
) -> None:
    response = await exchange(site_server, shop, await issue_code(provider, shop, clock))
    header = json.loads(base64.urlsafe_b64decode(response.json()["id_token"].split(".")[0] + "=="))
    assert header["alg"] == "RS256"
    assert header["kid"] in {key["kid"] for key in (await site_server.get("/oidc/jwks")).json()["keys"]}


async def test_a_tampered_id_token_is_rejected(
    provider: Provider,
    shop: Registered,
    clock: FakeClock,
    site_server: httpx.AsyncClient,
) -> None:
    id_token = (await exchange(site_server, shop, await issue_code(provider, shop, clock))).json()["id_token"]
    header, payload, signature = id_token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["phone_number"] = "+31699999999"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(BadSignatureError):
        jwt.decode(f"{header}.{forged}.{signature}", await jwks(site_server), algorithms=["RS256"])


async def test_client_secret_post_authenticates_too(
    provider: Provider,
    shop: Registered,
    clock: FakeClock,
    site_server: httpx.AsyncClient,
) -> None:
    issued = await issue_code(provider, shop, clock)
    response = await site_server.post(
        "/oidc/token",
        data={
            "grant_type": "authorization_code",
            "code": issued.code,
            "redirect_uri": shop.redirect_uri,
            "code_verifier": issued.pkce.verifier,
            "client_id": shop.client_id,
            "client_secret": shop.secret,
        },
    )
    assert response.status_code == 200 and "id_token" in response.json()
    assert response.headers["cache-control"] == "no-store"


def _error(response: httpx.Response) -> str:
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["content-type"] == "application/json"
    return response.json()["error"]


async def test_a_wrong_code_verifier_is_invalid_grant_and_spends_the_code(
    provider: Provider,
    shop: Registered,
    clock: FakeClock,
    site_server: httpx.AsyncClient,
) -> None:
    issued = await issue_code(provider, shop, clock)
    wrong = await exchange(site_server, shop, issued, code_verifier=new_pkce().verifier)
    assert wrong.status_code == 400 and _error(wrong) == "invalid_grant"
    assert _error(await exchange(site_server, shop, issued)) == "invalid_grant"


async def test_a_code_used_twice_is_invalid_grant_and_revokes_its_tokens(
    provider: Provider,
    shop: Registered,
    clock: FakeClock,
    site_server: httpx.AsyncClient,
    db: async_sessionmaker[AsyncSession],
) -> None:
    issued = await issue_code(provider, shop, clock)
    first = await exchange(site_server, shop, issued)
    assert first.status_code == 200
    second = await exchange(site_server, shop, issued)
    assert second.status_code == 400 and _error(second) == "invalid_grant"
    userinfo = await site_server.get(
        "/oidc/userinfo", headers={"Authorization": f"Bearer {first.json()['access_token']}"}
    )
    assert userinfo.status_code == 401
    async with db() as session:
        assert (await session.scalars(select(OidcAccessToken))).all() == []


async def test_a_code_used_by_another_client_is_invalid_grant(
    provider: Provider,
    shop: Registered,
    other_site: Registered,
    clock: FakeClock,
    site_server: httpx.AsyncClient,
) -> None:
    issued = await issue_code(provider, shop, clock)
    stolen = await exchange(site_server, other_site, issued, redirect_uri=shop.redirect_uri)
    assert stolen.status_code == 400 and _error(stolen) == "invalid_grant"


async def test_an_expired_code_is_invalid_grant(
    provider: Provider,
    shop: Registered,
    clock: FakeClock,
    site_server: httpx.AsyncClient,
) -> None:
    issued = await issue_code(provider, shop, clock)
    clock.advance(61)  # OIDC_CODE_LIFETIME is 60 s
    late = await exchange(site_server, shop, issued)
    assert late.status_code == 400 and _error(late) == "invalid_grant"


async def test_a_code_just_inside_its_lifetime_is_exchanged(
    provider: Provider,
    shop: Registered,
    clock: FakeClock,
    site_server: httpx.AsyncClient,
) -> None:
    issued = await issue_code(provider, shop, clock)
    clock.advance(59)
    assert (await exchange(site_server, shop, issued)).status_code == 200


async def test_another_redirect_uri_than_the_authorized_one_is_invalid_grant(
    provider: Provider,
    db: async_sessionmaker[AsyncSession],
    clock: FakeClock,
    site_server: httpx.AsyncClient,
) -> None:
    two = await register(db, clock, "Two callbacks", "https://a.example/cb", "https://b.example/cb")
    issued = await issue_code(provider, two, clock)
    response = await exchange(site_server, two, issued, redirect_uri="https://b.example/cb")
    assert _error(response) == "invalid_grant"


async def test_an_unknown_code_is_invalid_grant(
    provider: Provider,
    shop: Registered,
    clock: FakeClock,
    site_server: httpx.AsyncClient,
) -> None:
    issued = await issue_code(provider, shop, clock)
    assert _error(await exchange(site_server, shop, issued, code="not-a-code")) == "invalid_grant"


async def test_a_wrong_secret_with_basic_is_a_401_with_a_basic_challenge(
    provider: Provider,
    shop: Registered,
    clock: FakeClock,
    site_server: httpx.AsyncClient,
) -> None:
    issued = await issue_code(provider, shop, clock)
    response = await site_server.post(
        "/oidc/token",
        data={
            "grant_type": "authorization_code",
            "code": issued.code,
            "redirect_uri": shop.redirect_uri,
            "code_verifier": issued.pkce.verifier,
        },
        auth=(shop.client_id, "wrong"),
    )
    assert response.status_code == 401 and _error(response) == "invalid_client"
    assert response.headers["www-authenticate"].startswith("Basic ")
    assert (await exchange(site_server, shop, issued)).status_code == 200  # the code was not spent


async def test_no_client_credentials_is_invalid_client(
    provider: Provider,
    shop: Registered,
    clock: FakeClock,
    site_server: httpx.AsyncClient,
) -> None:
    issued = await issue_code(provider, shop, clock)
    response = await site_server.post("/oidc/token", data=token_form(shop, issued))
    assert response.status_code == 401 and _error(response) == "invalid_client"


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"grant_type": "refresh_token"}, "unsupported_grant_type"),
        ({"grant_type": ""}, "invalid_request"),
        ({"code_verifier": ""}, "invalid_request"),
        ({"code_verifier": "short"}, "invalid_request"),
        ({"redirect_uri": ""}, "invalid_request"),
    ],
)
async def test_malformed_token_requests_are_refused(
    provider: Provider,
    shop: Registered,
    clock: FakeClock,
    site_server: httpx.AsyncClient,
    changes: dict[str, str],
    error: str,
) -> None:
    response = await exchange(site_server, shop, await issue_code(provider, shop, clock), **changes)
    assert response.status_code == 400 and _error(response) == error


async def test_a_token_request_that_is_not_a_form_is_invalid_request(
    shop: Registered,
    site_server: httpx.AsyncClient,
) -> None:
    response = await site_server.post(
        "/oidc/token", json={"grant_type": "authorization_code"}, auth=(shop.client_id, shop.secret)
    )
    assert response.status_code == 400 and _error(response) == "invalid_request"


async def test_a_repeated_parameter_is_invalid_request(
    provider: Provider,
    shop: Registered,
    clock: FakeClock,
    site_server: httpx.AsyncClient,
) -> None:
    issued = await issue_code(provider, shop, clock)
    body = httpx.QueryParams(token_form(shop, issued)).add("code", "another")
    response = await site_server.post(
        "/oidc/token",
        content=str(body),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        auth=(shop.client_id, shop.secret),
    )
    assert _error(response) == "invalid_request"


async def test_userinfo_answers_for_the_access_token(
    provider: Provider,
    shop: Registered,
    clock: FakeClock,
    site_server: httpx.AsyncClient,
) -> None:
    tokens = (await exchange(site_server, shop, await issue_code(provider, shop, clock))).json()
    claims = await verified_claims(site_server, tokens["id_token"], shop, clock)
    response = await site_server.get("/oidc/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert response.status_code == 200 and response.headers["cache-control"] == "no-store"
    assert response.json() == {"sub": claims["sub"], "phone_number": NUMBER, "phone_number_verified": True}


async def test_userinfo_refuses_an_expired_access_token(
    provider: Provider,
    shop: Registered,
    clock: FakeClock,
    site_server: httpx.AsyncClient,
) -> None:
    tokens = (await exchange(site_server, shop, await issue_code(provider, shop, clock))).json()
    clock.advance(301)
    response = await site_server.get("/oidc/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith('Bearer realm="voice2fa", error="invalid_token"')


async def test_userinfo_without_a_token_is_a_bearer_challenge(site_server: httpx.AsyncClient) -> None:
    response = await site_server.get("/oidc/userinfo")
    assert response.status_code == 401 and response.headers["www-authenticate"] == 'Bearer realm="voice2fa"'


async def test_sub_is_stable_per_client_and_differs_across_clients(
    provider: Provider,
    shop: Registered,
    other_site: Registered,
    clock: FakeClock,
    site_server: httpx.AsyncClient,
) -> None:
    async def sub(client: Registered) -> str:
        tokens = (await exchange(site_server, client, await issue_code(provider, client, clock))).json()
        return (await verified_claims(site_server, tokens["id_token"], client, clock))["sub"]

    first = await sub(shop)
    assert await sub(shop) == first
    assert await sub(other_site) != first
    assert NUMBER.lstrip("+") not in first


async def test_the_log_records_each_hand_off_decision_with_its_client(
    provider: Provider,
    shop: Registered,
    clock: FakeClock,
    site_server: httpx.AsyncClient,
    db: async_sessionmaker[AsyncSession],
) -> None:
    issued = await issue_code(provider, shop, clock)
    await exchange(site_server, shop, issued)
    await exchange(site_server, shop, issued)
    rows = [(a.kind, a.outcome, a.client_id, a.number) for a in await attempts(db)]
    assert rows == [
        ("handoff", "handoff_started", shop.client_id, None),
        ("handoff", "code_issued", shop.client_id, NUMBER),
        ("token", "token_issued", shop.client_id, NUMBER),
        ("token", "oidc_error", shop.client_id, None),
    ]
    assert (await attempts(db))[-1].reason.startswith("invalid_grant: ")


async def test_a_token_records_when_its_client_was_last_used(
    provider: Provider,
    shop: Registered,
    clock: FakeClock,
    site_server: httpx.AsyncClient,
    db: async_sessionmaker[AsyncSession],
) -> None:
    await exchange(site_server, shop, await issue_code(provider, shop, clock))
    async with db() as session:
        client = await session.get(OidcClient, shop.client_id)
        assert client is not None and client.last_used_at == clock()
        [code] = (await session.scalars(select(OidcAuthorizationCode))).all()
    assert code.used_at == clock() and len(code.code_hash) == 64


async def test_a_removed_client_takes_its_codes_and_tokens_with_it(
    provider: Provider,
    shop: Registered,
    clock: FakeClock,
    site_server: httpx.AsyncClient,
    db: async_sessionmaker[AsyncSession],
) -> None:
    from webapp.oidc import clients

    tokens = (await exchange(site_server, shop, await issue_code(provider, shop, clock))).json()
    pending = await issue_code(provider, shop, clock)
    async with db() as session:
        assert await clients.remove(session, shop.client_id)
        assert (await session.scalars(select(OidcAuthorizationCode))).all() == []
        assert (await session.scalars(select(OidcAccessToken))).all() == []
    assert (await exchange(site_server, shop, pending)).status_code == 401
    userinfo = await site_server.get("/oidc/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert userinfo.status_code == 401
