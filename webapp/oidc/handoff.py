"""A pending authorization request as the verification page sees it.

The page carries the request's opaque id in the person's session; `load`
gives what the page needs of it: whom the number is being verified for, the
`login_hint`, when it began (only a verification completed after that may
complete it), whether it still waits, and the origin the page's forms are
answered towards (`redirect_origin`, for the page's `form-action`).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from urllib.parse import urlsplit

from sqlalchemy import select

from webapp.models import OidcAuthorizationRequest, OidcClient, max_length
from webapp.oidc.provider import Provider

#: What may stand in a Content-Security-Policy source expression as a host: no
#: quote, space, semicolon or comma could end the directive early.
_HOST = re.compile(r"[A-Za-z0-9._~-]+|\[[0-9A-Fa-f:.]+\]", re.ASCII)
#: The attempts rows' kind for the hand-off: started, code issued, cancelled, its errors.
KIND = "handoff"

State = Literal["open", "expired", "finished"]


@dataclass(frozen=True)
class Handoff:
    """An authorization request the session carries, with its client's name."""

    request_id: str
    client_id: str
    client_name: str
    redirect_origin: str | None
    login_hint: str | None
    began: datetime
    state: State

    @property
    def open(self) -> bool:
        """A verification now would complete it."""
        return self.state == "open"

    @property
    def cancellable(self) -> bool:
        """ "Cancel and go back" still tells the site (also after the request's time ran out)."""
        return self.state != "finished"

    @property
    def tag(self) -> str:
        """Names this request in the page's forms, without the id the session holds."""
        return hashlib.sha256(self.request_id.encode("ascii", "replace")).hexdigest()[:16]


def redirect_origin(redirect_uri: str) -> str | None:
    """`scheme://host[:port]` of a registered redirect URI, if it can stand in a CSP as it is."""
    parts = urlsplit(redirect_uri)
    try:
        port = parts.port
    except ValueError:
        return None
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 literal, which urlsplit gives without its brackets
        host = f"[{host}]"
    if parts.scheme not in ("https", "http") or not _HOST.fullmatch(host):
        return None
    return f"{parts.scheme}://{host}" + (f":{port}" if port is not None else "")


async def load(provider: Provider, request_id: str, now: datetime) -> Handoff | None:
    """The request and its client; None if there is no such request (unknown, pruned, or its client removed)."""
    if not request_id or len(request_id) > max_length(OidcAuthorizationRequest.__table__.c.id):
        return None
    async with provider.sessions() as session:
        found = (
            await session.execute(
                select(OidcAuthorizationRequest, OidcClient.name)
                .join(OidcClient, OidcClient.id == OidcAuthorizationRequest.client_id)
                .where(OidcAuthorizationRequest.id == request_id)
            )
        ).first()
    if found is None:
        return None
    request, name = found
    state: State = "finished" if request.finished_at is not None else "expired" if request.expires_at <= now else "open"
    return Handoff(
        request.id,
        request.client_id,
        name,
        redirect_origin(request.redirect_uri),
        request.login_hint,
        request.created_at,
        state,
    )
