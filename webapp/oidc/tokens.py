"""The token endpoint (authorization_code, PKCE S256), the ID token, and userinfo.

Answers follow RFC 6749 §5.1/§5.2: JSON with `Cache-Control: no-store`;
`invalid_client` is a 401 with `WWW-Authenticate: Basic`. The checks run in
this order: the form's own shape, then the client's credentials (scrypt, in a
thread), then the code is spent (`codes.spend`, atomic) and only then compared
with the request: client, expiry, redirect URI, code verifier. A code that
fails any of them is gone, as is a code presented a second time.

Failures count per client IP (an IPv6 client by its network, as every per-IP
limit does) and per client (LIMIT_TOKEN_FAILURES_PER_*):
past the limit, requests are refused with 429 before any secret is checked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from authlib.oauth2.rfc6749.errors import (
    InvalidClientError,
    InvalidGrantError,
    InvalidRequestError,
    OAuth2Error,
    UnsupportedGrantTypeError,
)
from authlib.oauth2.rfc6749.util import extract_basic_authorization
from authlib.oauth2.rfc6750.errors import InvalidTokenError
from authlib.oauth2.rfc7636.challenge import CODE_VERIFIER_PATTERN, compare_s256_code_challenge
from authlib.oidc.core.util import create_half_hash
from joserfc import jwt

from webapp.limits import LimiterUnavailable
from webapp.models import OidcAuthorizationCode, OidcClient
from webapp.oidc import clients, codes
from webapp.oidc.keys import ALGORITHM
from webapp.oidc.provider import Provider
from webapp.outcomes import Outcome

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
FAILURES = "oidc-token-failures"


@dataclass(frozen=True)
class Answer:
    """An HTTP answer in plain values: status, JSON body, headers."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


class Blocked(Exception):
    """Too many failed token requests from this IP or for this client."""

    def __init__(self, outcome: Outcome, retry_after: int, client: OidcClient | None = None) -> None:
        super().__init__(outcome)
        self.outcome = outcome
        self.retry_after = retry_after
        self.client = client


class WrongSecret(InvalidClientError):
    """A known client with the wrong secret: the failure counts against that client too."""

    def __init__(self, client: OidcClient) -> None:
        super().__init__(status_code=401, description="Unknown client or wrong secret.")
        self.client = client


def _oauth_error(error: OAuth2Error) -> Answer:
    status, body, headers = error()
    return Answer(status, body, {**dict(headers), **NO_STORE})


def _basic_credentials(authorization: str) -> tuple[str, str] | None:
    """client_id and secret from `Authorization: Basic` (RFC 6749 §2.3.1); None for another scheme."""
    if authorization.partition(" ")[0].lower() != "basic":
        return None
    try:
        client_id, secret = extract_basic_authorization({"Authorization": authorization})
    except UnicodeDecodeError:
        client_id = secret = None
    if not client_id or not secret:
        raise InvalidClientError(status_code=401, description="The Basic credentials can't be read.")
    return client_id, secret


def _form(pairs: list[tuple[str, str]]) -> dict[str, str]:
    found: dict[str, str] = {}
    for name, value in pairs:
        if name in found:
            raise InvalidRequestError("A parameter is given more than once.")
        found[name] = value
    return found


async def exchange(
    provider: Provider,
    pairs: list[tuple[str, str]] | None,
    authorization: str | None,
    *,
    issuer: str,
    ip: str,
) -> Answer:
    """Answer a token request: the form's pairs (None: not a form) and the Authorization header, if any."""
    client: OidcClient | None = None
    try:
        await _not_blocked(provider, ip=ip)
        if pairs is None:
            raise InvalidRequestError("Send the request as a small application/x-www-form-urlencoded UTF-8 form.")
        form = _form(pairs)
        grant_type = form.get("grant_type")
        if not grant_type:
            raise InvalidRequestError("Missing grant_type.")
        if grant_type != "authorization_code":
            raise UnsupportedGrantTypeError(grant_type)
        for name in ("code", "redirect_uri", "code_verifier"):
            if not form.get(name):
                raise InvalidRequestError(f"Missing {name}.")
        if not CODE_VERIFIER_PATTERN.match(form["code_verifier"]):
            raise InvalidRequestError("The code_verifier is not 43 to 128 unreserved characters (RFC 7636).")
        client = await _authenticated_client(provider, form, authorization)
        return await _tokens(provider, client, form, issuer=issuer, ip=ip)
    except Blocked as blocked:
        client = blocked.client or client
        await provider.log.write("token", blocked.outcome, ip, client_id=client.id if client else None)
        return Answer(
            429,
            {"error": "invalid_request", "error_description": "Too many failed token requests."},
            {"Retry-After": str(blocked.retry_after), **NO_STORE},
        )
    except LimiterUnavailable:
        await provider.log.write("token", Outcome.LIMITER_UNAVAILABLE, ip, client_id=client.id if client else None)
        return Answer(503, {"error": "temporarily_unavailable", "error_description": "Try again later."}, NO_STORE)
    except OAuth2Error as error:
        client = error.client if isinstance(error, WrongSecret) else client
        await provider.log.write(
            "token",
            Outcome.OIDC_ERROR,
            ip,
            client_id=client.id if client else None,
            reason=f"{error.error}: {error.get_error_description()}",
        )
        await _count_failure(provider, ip, client)
        return _oauth_error(error)


async def _not_blocked(provider: Provider, ip: str | None = None, client: OidcClient | None = None) -> None:
    """Raise Blocked if this IP's, or this client's, failures are past their limit."""
    if client is None:
        items, key = provider.token_failures_per_ip, ("ip", provider.limits.client_key(ip or ""))
    else:
        items, key = provider.token_failures_per_client, ("client", client.id)
    try:
        wait = await provider.limits.blocked(items, FAILURES, *key)
    except LimiterUnavailable:
        if provider.settings.ratelimit_fail_open:
            return
        raise
    if wait:
        raise Blocked(Outcome.BLOCKED_IP if client is None else Outcome.BLOCKED_CLIENT, wait, client)


async def _count_failure(provider: Provider, ip: str, client: OidcClient | None) -> None:
    try:
        await provider.limits.hit(provider.token_failures_per_ip, FAILURES, "ip", provider.limits.client_key(ip))
        if client is not None:
            await provider.limits.hit(provider.token_failures_per_client, FAILURES, "client", client.id)
    except LimiterUnavailable:
        pass  # refused anyway; the next request meets the limiter's state again


async def _authenticated_client(provider: Provider, form: dict[str, str], authorization: str | None) -> OidcClient:
    basic = _basic_credentials(authorization) if authorization else None
    if basic is not None and (("client_id" in form and form["client_id"] != basic[0]) or "client_secret" in form):
        raise InvalidRequestError("Use one way of authenticating the client, not two.")
    client_id, secret = basic or (form.get("client_id", ""), form.get("client_secret", ""))
    if not client_id or not secret:
        raise InvalidClientError(
            status_code=401, description="Authenticate with client_secret_basic or client_secret_post."
        )
    async with provider.sessions() as session:
        client = await clients.get(session, client_id)
    if client is None:
        raise InvalidClientError(status_code=401, description="Unknown client or wrong secret.")
    await _not_blocked(provider, client=client)
    if not await clients.secret_matches(client, secret):
        raise WrongSecret(client)
    return client


async def _tokens(provider: Provider, client: OidcClient, form: dict[str, str], *, issuer: str, ip: str) -> Answer:
    now = provider.clock()
    async with provider.sessions() as session:
        spent = await codes.spend(session, form["code"], now)
        code = spent.code
        if code is None:
            raise InvalidGrantError("The code is not valid.")
        if not spent.first_use:
            raise InvalidGrantError("The code was used already; the tokens it gave are revoked.")
        if code.client_id != client.id:
            raise InvalidGrantError("The code was issued to another client.")
        if code.expires_at <= now:
            raise InvalidGrantError("The code has expired.")
        if form["redirect_uri"] != code.redirect_uri:
            raise InvalidGrantError("The redirect_uri differs from the authorization request's.")
        if not compare_s256_code_challenge(form["code_verifier"], code.code_challenge):  # type: ignore[no-untyped-call]  # unannotated in types-Authlib
            raise InvalidGrantError("The code_verifier does not match the code_challenge.")
        lifetime = provider.settings.oidc_token_lifetime
        access_token = codes.issue_access_token(session, code, now=now, lifetime=lifetime)
        id_token = await id_token_for(provider, client.id, code, access_token, issuer=issuer, now=now)
        stored = await session.get(OidcClient, client.id)
        if stored is not None:
            stored.last_used_at = now
        session.add(provider.log.row("token", Outcome.TOKEN_ISSUED, ip, number=code.number, client_id=client.id))
        await session.commit()
    body = {
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": lifetime,
        "id_token": id_token,
        "scope": code.scope,
    }
    return Answer(200, body, NO_STORE)


async def id_token_for(
    provider: Provider,
    client_id: str,
    code: OidcAuthorizationCode,
    access_token: str,
    *,
    issuer: str,
    now: datetime,
) -> str:
    """The signed ID token (RS256, with kid) for what `code` proved."""
    key = await provider.keys.signing_key()
    issued = int(now.timestamp())
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": await provider.subjects.sub(client_id, code.number),
        "aud": client_id,
        "iat": issued,
        "exp": issued + provider.settings.oidc_token_lifetime,
        "auth_time": int(code.auth_time.timestamp()),
        "amr": ["tel"],  # RFC 8176: confirmation by a telephone call
        "phone_number": code.number,
        "phone_number_verified": True,
        "at_hash": create_half_hash(access_token, ALGORITHM).decode("ascii"),  # type: ignore[union-attr]  # None only for an algorithm it does not know
    }
    if code.nonce:
        claims["nonce"] = code.nonce
    return jwt.encode({"alg": ALGORITHM, "kid": key.kid, "typ": "JWT"}, claims, key, algorithms=[ALGORITHM])


async def userinfo(provider: Provider, authorization: str | None) -> Answer:
    """The claims behind a Bearer access token (RFC 6750 §2.1)."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        # No credentials at all: a challenge without an error code (RFC 6750 §3.1).
        return Answer(
            401,
            {"error_description": "Send the access token as a Bearer token."},
            {"WWW-Authenticate": 'Bearer realm="voice2fa"', **NO_STORE},
        )
    async with provider.sessions() as session:
        row = await codes.find_access_token(session, token.strip(), provider.clock())
    if row is None:
        return _oauth_error(InvalidTokenError(realm="voice2fa"))
    body = {
        "sub": await provider.subjects.sub(row.client_id, row.number),
        "phone_number": row.number,
        "phone_number_verified": True,
    }
    return Answer(200, body, NO_STORE)
