"""Refuse cross-site form posts.

Starting a verification needs no cookie, so SameSite does not protect it: a
page elsewhere could make its visitors' browsers post /verify and place calls
from thousands of addresses. Browsers say where a request comes from
(`Sec-Fetch-Site`, or else `Origin`); a post from another site is refused.
Clients that send neither (curl, server-side code) are not browsers being
tricked, and pass. The JSON API (/api/) is not checked at all: it takes
only `application/json`, which no cross-site form can send (a browser asks
first, with a CORS preflight this app never grants), and every request
carries the client's Basic credentials.

`Origin` is compared with this request's own origin as a whole: scheme, host
and port, with the scheme's default port filled in, so `http://app.test` may
not post to `https://app.test` (a page on the plain-HTTP origin is anyone's on
the network path). Behind a proxy that ends TLS the request arrives as plain
HTTP; its scheme is then the `X-Forwarded-Proto` of a peer in TRUSTED_PROXIES
(webapp.client_ip), and the proxy must pass the `Host` header through.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from webapp.client_ip import Network, request_scheme

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
DEFAULT_PORTS = {"http": 80, "https": 443}

Origin = tuple[str, str, int]


def _origin(scheme: str, netloc: str) -> Origin | None:
    """(scheme, host, port) with the default port filled in; None if it is not an HTTP(S) origin."""
    scheme = scheme.lower()
    if scheme not in DEFAULT_PORTS or not netloc:
        return None
    try:
        parts = urlsplit(f"//{netloc}")
        port = parts.port
    except ValueError:  # a port that is not a number, or out of range
        return None
    if not parts.hostname:
        return None
    return scheme, parts.hostname.lower().rstrip("."), port or DEFAULT_PORTS[scheme]


def is_cross_site(scope: Scope, trusted: tuple[Network, ...] = ()) -> bool:
    """Whether an unsafe request was sent by a browser on behalf of another site."""
    headers = Headers(scope=scope)
    fetch_site = headers.get("sec-fetch-site")
    if fetch_site is not None:
        return fetch_site not in ("same-origin", "none")
    origin = headers.get("origin")
    if origin is None:
        return False
    parts = urlsplit(origin)
    theirs = _origin(parts.scheme, parts.netloc) if not (parts.path or parts.query) else None
    ours = _origin(request_scheme(scope, trusted), headers.get("host", ""))
    return theirs is None or theirs != ours


def _is_api(scope: Scope) -> bool:
    path: str = scope.get("path", "")
    return path.removeprefix(scope.get("root_path", "")).startswith("/api/")


class CrossOriginProtection:
    """Pure ASGI middleware: 403 for cross-site POSTs."""

    def __init__(self, app: ASGIApp, trusted: tuple[Network, ...] = ()) -> None:
        self.app = app
        self.trusted = trusted

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] not in SAFE_METHODS
            and not _is_api(scope)
            and is_cross_site(scope, self.trusted)
        ):
            response = PlainTextResponse("Cross-site form posts are refused.", status_code=403)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
