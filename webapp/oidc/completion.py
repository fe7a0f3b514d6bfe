"""Finishing an authorization request: the redirect back to the site, with a code or `access_denied`.

    complete(provider, id, ...)     → the redirect back: ?code=…&state=…&iss=…
    cancel(provider, id, ...)       → the redirect back: ?error=access_denied&state=…&iss=…

Both are what the verification page calls (`webapp.oidc.page`); each finishes
the stored request once only (a conditional UPDATE of `finished_at`), and
raises `HandoffError`, with a message for the person, when it can't.
`redirect_url` builds every redirect back (RFC 6749 §4.1.2, `state` exactly as
received, `iss` as RFC 9207 says), `webapp.oidc.authorize`'s error redirects too.
"""

from __future__ import annotations

from datetime import datetime

from authlib.common.urls import add_params_to_uri
from authlib.oauth2.rfc6749.errors import AccessDeniedError, OAuth2Error
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from webapp.db import affected
from webapp.models import OidcAuthorizationRequest, max_length
from webapp.oidc import codes
from webapp.oidc.handoff import KIND
from webapp.oidc.provider import Provider
from webapp.outcomes import Outcome


class HandoffError(Exception):
    """The request can't be completed or cancelled; `message` is for the person."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def redirect_url(redirect_uri: str, params: list[tuple[str, str]], state: str | None, issuer: str) -> str:
    """`redirect_uri` with `params`, `state` as received (when there was one) and `iss` (RFC 9207)."""
    if state is not None:
        params = [*params, ("state", state)]
    return add_params_to_uri(redirect_uri, [*params, ("iss", issuer)])


def error_params(error: OAuth2Error) -> list[tuple[str, str]]:
    """An OAuth 2.0 error as the redirect's `error` and `error_description`."""
    return [("error", str(error.error)), ("error_description", str(error.description))]


def reason(error: str, description: str) -> str:
    """An attempts row's `reason` for an OAuth 2.0 error."""
    return f"{error}: {description}"


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
        KIND, Outcome.OIDC_ERROR, ip, number=number, client_id=client_id, reason=reason("access_denied", failure[0])
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
    return redirect_url(request.redirect_uri, error_params(denied), request.state, issuer)
