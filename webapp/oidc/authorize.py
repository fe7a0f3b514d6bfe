"""The authorization endpoint's checks, and what the page calls to finish a request.

    check(provider, query, ...)     → ErrorPage | Redirect | Accepted
    complete(provider, id, ...)     → the redirect back: ?code=…&state=…&iss=…
    cancel(provider, id, ...)       → the redirect back: ?error=access_denied&state=…&iss=…

`client_id` and `redirect_uri` are checked first: until both are known to
belong together, nothing is sent to the redirect URI (an `ErrorPage`, never a
redirect: no open redirect). After that every error goes back to the site as
RFC 6749 §4.1.2.1 says, with `state` exactly as received and `iss` (RFC 9207).
A request that passes is stored server side under an opaque id, which the
page carries in the person's session; `complete` turns it into a code once a
verification finished after the request began.

Every request that is stored costs a row until it expires, so requests are
counted per client IP first (LIMIT_AUTHORIZE_PER_IP, in the one limiter):
past the limit, voice2fa's own error page with a 429, nothing stored.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import parse_qsl

from authlib.common.urls import add_params_to_uri
from authlib.oauth2.rfc6749.errors import (
    AccessDeniedError,
    InvalidRequestError,
    InvalidScopeError,
    OAuth2Error,
    UnsupportedResponseTypeError,
)
from authlib.oauth2.rfc7636.challenge import CODE_CHALLENGE_PATTERN
from authlib.oidc.core.errors import LoginRequiredError, RequestNotSupportedError, RequestURINotSupportedError
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from webapp.attempts import printable
from webapp.db import affected
from webapp.limits import LimiterUnavailable
from webapp.models import OidcAuthorizationRequest, OidcClient, max_length
from webapp.oidc import clients, codes
from webapp.oidc.provider import Provider
from webapp.outcomes import Outcome
from webapp.waits import wait_text

KIND = "handoff"
SCOPES = ("openid", "phone")
#: Longest `state` or `nonce` kept; a URL carries them, so a real one is far shorter.
MAX_VALUE = 2048
MAX_FIELDS = 50
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


class HandoffError(Exception):
    """The request can't be completed or cancelled; `message` is for the person."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _parse(query: bytes) -> dict[str, list[str]] | None:
    """The query's parameters, every value kept; None if it is not strict UTF-8 or has too many fields."""
    try:
        pairs = parse_qsl(query.decode("utf-8"), keep_blank_values=True, errors="strict", max_num_fields=MAX_FIELDS)
    except (UnicodeDecodeError, ValueError):
        return None
    found: dict[str, list[str]] = {}
    for name, value in pairs:
        found.setdefault(name, []).append(value)
    return found


def redirect_url(redirect_uri: str, params: list[tuple[str, str]], state: str | None, issuer: str) -> str:
    """`redirect_uri` with `params`, `state` as received (when there was one) and `iss` (RFC 9207)."""
    if state is not None:
        params = [*params, ("state", state)]
    return add_params_to_uri(redirect_uri, [*params, ("iss", issuer)])


def _error_params(error: OAuth2Error) -> list[tuple[str, str]]:
    return [("error", str(error.error)), ("error_description", str(error.description))]


def _reason(error: str, description: str) -> str:
    return f"{error}: {description}"


async def check(provider: Provider, query: bytes, *, issuer: str, ip: str) -> ErrorPage | Redirect | Accepted:
    """Check an authorization request (the raw query string) and store it if it is good."""
    refused = await _over_limit(provider, ip)
    if refused is not None:
        return refused
    params = _parse(query)
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
        request = _validated(params, client, redirect_uri)
    except OAuth2Error as error:
        await provider.log.write(
            KIND, Outcome.OIDC_ERROR, ip, client_id=client.id, reason=_reason(str(error.error), str(error.description))
        )
        return Redirect(redirect_url(redirect_uri, _error_params(error), state, issuer))
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


def _validated(params: dict[str, list[str]], client: OidcClient, redirect_uri: str) -> dict[str, str | None]:
    """The request's checks after client and redirect URI: its stored fields, or the OAuth2Error to send back."""
    for name, values in params.items():
        if len(values) > 1:
            raise InvalidRequestError(
                f"The parameter {printable(name, 40)!r} is given more than once."
                if _describable(name)
                else "A parameter is given more than once."
            )
    value = {name: values[0] for name, values in params.items()}
    if "request" in value:
        raise RequestNotSupportedError("Request objects are not supported.")
    if "request_uri" in value:
        raise RequestURINotSupportedError("request_uri is not supported.")
    response_type = value.get("response_type")
    if not response_type:
        raise InvalidRequestError("Missing response_type.")
    if response_type != "code":
        raise UnsupportedResponseTypeError(response_type, "Only response_type=code is supported.")
    if value.get("response_mode", "query") != "query":
        raise InvalidRequestError("Only response_mode=query is supported.")
    scopes = value.get("scope", "").split()
    if "openid" not in scopes:
        raise InvalidScopeError("The scope must include openid.")
    challenge = value.get("code_challenge")
    if not challenge:
        raise InvalidRequestError("PKCE is required: send code_challenge with code_challenge_method=S256.")
    if value.get("code_challenge_method") != "S256":
        raise InvalidRequestError("code_challenge_method must be S256.")
    if not CODE_CHALLENGE_PATTERN.match(challenge):
        raise InvalidRequestError("The code_challenge is not a base64url S256 challenge.")
    for name in ("state", "nonce"):
        if len(value.get(name) or "") > MAX_VALUE:
            raise InvalidRequestError(f"The {name} is longer than {MAX_VALUE} characters.")
    prompts = value.get("prompt", "").split()
    if "none" in prompts:
        # Every hand-off needs a call answered: there is never a session to reuse silently.
        if len(prompts) > 1:
            raise InvalidRequestError("prompt=none can't be combined with other prompt values.")
        raise LoginRequiredError("Verifying a number needs the person: prompt=none can't be honoured.")
    hint = value.get("login_hint")
    return {
        "scope": " ".join(scope for scope in SCOPES if scope in scopes),
        "nonce": value.get("nonce") or None,
        "code_challenge": challenge,
        "login_hint": printable(hint, 64) if hint else None,
    }


def _describable(name: str) -> bool:
    """Whether a parameter name can go in an error_description (RFC 6749 allows only some ASCII)."""
    return name.isascii() and name.isprintable() and not set(name) & {'"', "\\"}


async def _page(provider: Provider, ip: str, client_id: str | None, error: str, reason: str, message: str) -> ErrorPage:
    await provider.log.write(KIND, Outcome.OIDC_ERROR, ip, client_id=client_id, reason=_reason(error, reason))
    return ErrorPage(error, message)


async def _open_request(session: AsyncSession, request_id: str) -> OidcAuthorizationRequest | None:
    if not request_id or len(request_id) > max_length(OidcAuthorizationRequest.__table__.c.id):
        return None
    return await session.get(OidcAuthorizationRequest, request_id)


async def _finish(session: AsyncSession, request: OidcAuthorizationRequest, now: datetime, *, unexpired: bool) -> bool:
    """Mark the request over, atomically (once only); whether this call did."""
    conditions = [OidcAuthorizationRequest.id == request.id, OidcAuthorizationRequest.finished_at.is_(None)]
    if unexpired:
        conditions.append(OidcAuthorizationRequest.expires_at > now)
    result = await session.execute(update(OidcAuthorizationRequest).where(*conditions).values(finished_at=now))
    return bool(affected(result))


async def complete(
    provider: Provider,
    request_id: str,
    *,
    number: str,
    verified_at: datetime,
    issuer: str,
    ip: str,
) -> str:
    """Issue a code for the pending request, now that `number` (E.164) was verified at `verified_at`.

    The page calls this only for a verification completed in the browser
    session that carries `request_id`; a verification from before the request
    began does not count. Returns the URL to send the browser to; raises
    HandoffError when the request is unknown, over or expired.
    """
    now = provider.clock()
    async with provider.sessions() as session:
        request = await _open_request(session, request_id)
        if request is None:
            failure = (
                "unknown or removed request",
                "This sign-in is no longer waiting. Go back to the site and start again.",
            )
        elif verified_at < request.created_at:
            failure = "verified before the request began", "Verify your number again to continue."
        elif not await _finish(session, request, now, unexpired=True):
            failure = "request finished or expired", "This sign-in has ended. Go back to the site and start again."
        else:
            code = codes.issue_code(
                session,
                request,
                number=number,
                auth_time=verified_at,
                now=now,
                lifetime=provider.settings.oidc_code_lifetime,
            )
            session.add(provider.log.row(KIND, Outcome.CODE_ISSUED, ip, number=number, client_id=request.client_id))
            await session.commit()
            return redirect_url(request.redirect_uri, [("code", code)], request.state, issuer)
        client_id = request.client_id if request else None
        await session.rollback()
    await provider.log.write(
        KIND, Outcome.OIDC_ERROR, ip, number=number, client_id=client_id, reason=_reason("access_denied", failure[0])
    )
    raise HandoffError(failure[1])


async def cancel(provider: Provider, request_id: str, *, issuer: str, ip: str) -> str:
    """ "Cancel and go back": the URL that tells the client `access_denied`; HandoffError if there is none."""
    now = provider.clock()
    async with provider.sessions() as session:
        request = await _open_request(session, request_id)
        if request is None or not await _finish(session, request, now, unexpired=False):
            raise HandoffError("This sign-in is no longer waiting. Go back to the site and start again.")
        session.add(provider.log.row(KIND, Outcome.HANDOFF_CANCELLED, ip, client_id=request.client_id))
        await session.commit()
    denied = AccessDeniedError("The person cancelled the verification.")
    return redirect_url(request.redirect_uri, _error_params(denied), request.state, issuer)
