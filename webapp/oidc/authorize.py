"""The authorization endpoint's checks: an error page, an error redirect, or the request stored.

    check(provider, query, ...)     → ErrorPage | Redirect | Accepted

`client_id` and `redirect_uri` are checked first: until both are known to
belong together, nothing is sent to the redirect URI (an `ErrorPage`, never a
redirect: no open redirect). After that every error goes back to the site as
RFC 6749 §4.1.2.1 says, with `state` exactly as received and `iss` (RFC 9207);
the other parameters' checks are `webapp.oidc.parameters`. A request that
passes is stored server side under an opaque id, which the page carries in the
person's session; `webapp.oidc.completion.complete` turns it into a code once
a verification finished after the request began.

Every request that is stored costs a row until it expires, so requests are
counted per client IP first (LIMIT_AUTHORIZE_PER_IP, in the one limiter):
past the limit, voice2fa's own error page with a 429, nothing stored.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

from authlib.oauth2.rfc6749.errors import OAuth2Error

from webapp.attempts import printable
from webapp.limits import LimiterUnavailable
from webapp.models import OidcAuthorizationRequest
from webapp.oidc import clients, parameters
from webapp.oidc.completion import error_params, reason, redirect_url
from webapp.oidc.handoff import KIND
from webapp.oidc.provider import Provider
from webapp.outcomes import Outcome
from webapp.waits import wait_text

#: The limiter's key for authorization requests per client IP.
PER_IP = "authorize-ip"


@dataclass(frozen=True)
class ErrorPage:
    """voice2fa's own error page: the client or its redirect URI can't be trusted with a redirect."""

    error: str
    message: str
    status: int = 400
    retry_after: int | None = None


@dataclass(frozen=True)
class Redirect:
    """Send the browser back to the client (303)."""

    url: str


@dataclass(frozen=True)
class Accepted:
    """A valid request, stored: the page carries `request_id` in the person's session."""

    request_id: str
    client_name: str
    login_hint: str | None


async def check(provider: Provider, query: bytes, *, issuer: str, ip: str) -> ErrorPage | Redirect | Accepted:
    """Check an authorization request (the raw query string) and store it if it is good."""
    refused = await _over_limit(provider, ip)
    if refused is not None:
        return refused
    params = parameters.parse(query)
    if params is None:
        return await _page(
            provider,
            ip,
            None,
            "invalid_request",
            "the query is not UTF-8 or has too many fields",
            "This sign-in link is damaged. Go back to the site you came from and try again.",
        )
    client_ids = params.get("client_id", [])
    if len(client_ids) != 1:
        return await _page(
            provider,
            ip,
            None,
            "invalid_request",
            "client_id missing or repeated",
            "This sign-in link does not say which site sent you. Go back and try again.",
        )
    async with provider.sessions() as session:
        client = await clients.get(session, client_ids[0])
    if client is None:
        return await _page(
            provider,
            ip,
            None,
            "invalid_client",
            f"unknown client_id {printable(client_ids[0], 40)!r}",
            "The site that sent you here is not registered with voice2fa.",
        )
    redirect_uris = params.get("redirect_uri", [])
    if len(redirect_uris) != 1 or redirect_uris[0] not in client.redirect_uris:
        return await _page(
            provider,
            ip,
            client.id,
            "invalid_request",
            "redirect_uri missing, repeated or not registered",
            f"{client.name} asked to send you back to an address it has not registered with voice2fa, "
            "so you are not sent there.",
        )
    redirect_uri = redirect_uris[0]
    states = params.get("state")
    state = states[0] if states else None
    try:
        request = parameters.validated(params)
    except OAuth2Error as error:
        await provider.log.write(
            KIND, Outcome.OIDC_ERROR, ip, client_id=client.id, reason=reason(str(error.error), str(error.description))
        )
        return Redirect(redirect_url(redirect_uri, error_params(error), state, issuer))
    now = provider.clock()
    async with provider.sessions() as session:
        stored = OidcAuthorizationRequest(
            id=secrets.token_urlsafe(32),
            client_id=client.id,
            redirect_uri=redirect_uri,
            state=state,
            created_at=now,
            expires_at=now + timedelta(seconds=provider.settings.oidc_request_lifetime),
            **request,
        )
        session.add(stored)
        session.add(provider.log.row(KIND, Outcome.HANDOFF_STARTED, ip, client_id=client.id))
        await session.commit()
    return Accepted(stored.id, client.name, stored.login_hint)


async def _over_limit(provider: Provider, ip: str) -> ErrorPage | None:
    """Count this request against the client IP's limit; the error page if it has no room."""
    try:
        wait = await provider.limits.hit(provider.authorize_per_ip, PER_IP, provider.limits.client_key(ip))
    except LimiterUnavailable:
        if provider.settings.ratelimit_fail_open:
            return None
        await provider.log.write(KIND, Outcome.LIMITER_UNAVAILABLE, ip)
        return ErrorPage(
            "temporarily_unavailable",
            "We can't take sign-ins right now. Please try again in a few minutes.",
            status=503,
            retry_after=60,
        )
    if wait is None:
        return None
    await provider.log.write(KIND, Outcome.BLOCKED_IP, ip)
    return ErrorPage(
        "temporarily_unavailable",
        f"Too many sign-ins were started from your network. Try again in {wait_text(wait)}.",
        status=429,
        retry_after=wait,
    )


async def _page(
    provider: Provider, ip: str, client_id: str | None, error: str, description: str, message: str
) -> ErrorPage:
    """Log the refusal (`error: description`) and answer with voice2fa's own error page, `message` for the person."""
    await provider.log.write(KIND, Outcome.OIDC_ERROR, ip, client_id=client_id, reason=reason(error, description))
    return ErrorPage(error, message)
