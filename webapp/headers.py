"""Security headers on every response: a strict CSP and friends.

The pages carry no inline script or style, so the policy can forbid both.
`form-action` also governs where a form's answer may redirect (Chromium
checks every hop), so a page of a hand-off, whose forms are answered by a 303
to the site, names that site's origin there too (`policy`); a route that sets
its own Content-Security-Policy keeps it.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send


def policy(form_action: Sequence[str] = ()) -> str:
    """The Content-Security-Policy; `form_action`: origins beyond 'self' that a form's answer may go to."""
    targets = " ".join(("'self'", *form_action))
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        f"connect-src 'self'; form-action {targets}; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
    )


CSP = policy()

HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


class SecurityHeaders:
    """Pure ASGI middleware adding HEADERS where the app did not set them."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)
