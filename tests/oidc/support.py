"""What the hand-off's tests share: registered clients, PKCE, authorization requests, codes, tokens.

The seam the verification page calls (`authorize.check`, `completion.complete`,
`cancel`) is driven directly, with a `Provider` of its own on the test's
database, as a second worker would have; the token, userinfo and JWKS
endpoints are reached over HTTP, through the app.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.support import FakeClock
from webapp.oidc import authorize, clients, completion
from webapp.oidc.provider import Provider

ISSUER = "http://testserver"  # the served address: sandbox mode without PUBLIC_URL
NUMBER = "+31612345678"
SHOP_CALLBACK = "https://shop.example/callback"


@dataclass(frozen=True)
class Registered:
    """A client as its site knows it: credentials and the redirect URI it uses."""

    client_id: str
    secret: str
    redirect_uri: str


@dataclass(frozen=True)
class Pkce:
    verifier: str
    challenge: str


def new_pkce() -> Pkce:
    """A fresh verifier and its S256 challenge, computed here rather than with the server's code."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()
    return Pkce(verifier, challenge)


async def register(db: async_sessionmaker[AsyncSession], clock: FakeClock, name: str, *uris: str) -> Registered:
    """Register a client as `voice2fa client add` does."""
    async with db() as session:
        credentials = await clients.add(session, name, list(uris), clock())
    return Registered(credentials.client_id, credentials.client_secret, uris[0])


def query(client: Registered, pkce: Pkce | None = None, **changes: str | None) -> bytes:
    """An authorization request's query string; a change of None leaves that parameter out."""
    params: dict[str, str | None] = {
        "response_type": "code",
        "client_id": client.client_id,
        "redirect_uri": client.redirect_uri,
        "scope": "openid phone",
        "state": "af0ifjsldkj",
        "nonce": "n-0S6_WzA2Mj",
        "code_challenge": (pkce or new_pkce()).challenge,
        "code_challenge_method": "S256",
    }
    params.update(changes)
    return urlencode({k: v for k, v in params.items() if v is not None}).encode()


def redirect_params(url: str) -> dict[str, list[str]]:
    """The query parameters of a redirect back to the client."""
    return parse_qs(urlsplit(url).query, keep_blank_values=True)


@dataclass(frozen=True)
class Issued:
    code: str
    pkce: Pkce
    url: str


async def issue_code(
    provider: Provider, client: Registered, clock: FakeClock, number: str = NUMBER, **changes: str | None
) -> Issued:
    """An authorization request that passes, completed by a verification of `number`, as the page will."""
    pkce = new_pkce()
    accepted = await authorize.check(provider, query(client, pkce, **changes), issuer=ISSUER, ip="203.0.113.10")
    assert isinstance(accepted, authorize.Accepted), accepted
    url = await completion.complete(
        provider, accepted.request_id, number=number, verified_at=clock(), issuer=ISSUER, ip="203.0.113.10"
    )
    [code] = redirect_params(url)["code"]
    return Issued(code, pkce, url)


def token_form(client: Registered, issued: Issued, **changes: str) -> dict[str, str]:
    return {
        "grant_type": "authorization_code",
        "code": issued.code,
        "redirect_uri": client.redirect_uri,
        "code_verifier": issued.pkce.verifier,
        **changes,
    }


async def exchange(http: httpx.AsyncClient, client: Registered, issued: Issued, **changes: str) -> httpx.Response:
    """POST the token endpoint with client_secret_basic."""
    return await http.post(
        "/oidc/token", data=token_form(client, issued, **changes), auth=(client.client_id, client.secret)
    )


async def jwks(http: httpx.AsyncClient) -> KeySet:
    """The published keys, fetched as a client would."""
    response = await http.get("/oidc/jwks")
    assert response.status_code == 200
    return KeySet.import_key_set(response.json())


async def verified_claims(http: httpx.AsyncClient, id_token: str, client: Registered, clock: FakeClock) -> dict:
    """The ID token's claims after joserfc checked its signature against the JWKS and its registered claims."""
    token = jwt.decode(id_token, await jwks(http), algorithms=["RS256"])
    jwt.JWTClaimsRegistry(
        now=int(clock().timestamp()),
        leeway=0,
        iss={"essential": True, "value": ISSUER},
        aud={"essential": True, "value": client.client_id},
        sub={"essential": True},
        exp={"essential": True},
        iat={"essential": True},
    ).validate(token.claims)
    return token.claims


# -- the hand-off through the page -------------------------------------------------------------


async def begin_handoff(
    browser: httpx.AsyncClient, client: Registered, pkce: Pkce | None = None, **changes: str | None
) -> Pkce:
    """The site sends `browser` to the authorization endpoint, which passes it on to the page."""
    pkce = pkce or new_pkce()
    response = await browser.get("/oidc/authorize?" + query(client, pkce, **changes).decode())
    assert response.status_code == 303 and response.headers["location"] == "/", response.text
    return pkce


async def type_code(browser: httpx.AsyncClient, code: str, **fields: str) -> httpx.Response:
    """Post the code form as the page renders it: with its call and, during a hand-off, its tag."""
    page = (await browser.get("/")).text
    code_form = page.split("code-form", 1)[1]
    form = dict(re.findall(r'<input type="hidden" name="(call|handoff)" value="([^"]*)">', code_form))
    return await browser.post("/confirm", data={**form, "code": code, **fields})


def page_tag(html: str) -> str:
    """The hand-off tag a page's forms carry."""
    found = re.search(r'name="handoff" value="([0-9a-f]{16})"', html)
    assert found, "the page's forms name no hand-off"
    return found.group(1)
