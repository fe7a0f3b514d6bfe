"""Refuse cross-site form posts.

Starting a verification needs no cookie, so SameSite does not protect it: a
page elsewhere could make its visitors' browsers post /verify and place calls
from thousands of addresses. Browsers say where a request comes from
(`Sec-Fetch-Site`, or else `Origin`); a post from another site is refused.
Clients that send neither (curl, server-side code) are not browsers being
tricked, and pass.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def is_cross_site(scope: Scope) -> bool:
    """Whether an unsafe request was sent by a browser on behalf of another site."""
    headers = Headers(scope=scope)
    fetch_site = headers.get("sec-fetch-site")
    if fetch_site is not None:
        return fetch_site not in ("same-origin", "none")
    origin = headers.get("origin")
    if origin is None:
        return False
    if origin == "null":
        return True
    return urlsplit(origin).netloc.lower() != headers.get("host", "").lower()


class CrossOriginProtection:
    """Pure ASGI middleware: 403 for cross-site POSTs."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] not in SAFE_METHODS and is_cross_site(scope):
            response = PlainTextResponse("Cross-site form posts are refused.", status_code=403)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
