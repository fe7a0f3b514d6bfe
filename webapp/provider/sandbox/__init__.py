"""An offline server that speaks the Verify REST APIs of MessageBird and Twilio.

One app, one memory, both APIs side by side: MessageBird's classic Verify API
(`POST /verify`, ... — `webapp.provider.sandbox.messagebird`) and Twilio Verify
v2 (`/v2/Services/{ServiceSid}/...` — `webapp.provider.sandbox.twilio`), each
with its own authentication, objects and error bodies. Nothing leaves the
process: each "call" is kept in memory and listed, token included, at
`GET /_sandbox/calls` (JSON, newest first, each with `api`: "messagebird" or
"twilio") and `GET /_sandbox/`: every call to whoever asks, so `voice2fa
sandbox` binds loopback only unless told otherwise. (The app in sandbox mode
serves its own `/_sandbox/calls`, of the asking session's calls only:
webapp.sandbox_phone.)

Recipients that make failures visible, the same through both APIs (digits
without "+"; each a valid Dutch mobile number, so phone policy lets them through):

    31610000500  TRIGGER_SERVER_ERROR  500 (the API's own error body), no call placed
    31610000504  TRIGGER_HANG          waits `hang_seconds`, then the same 500
    31610000486  TRIGGER_CALL_FAILS    created, but the call fails: status "failed"

and two that only one API refuses (503 in its own error body, no call placed)
while the other calls as usual, to watch failover:

    31610000501  TRIGGER_MESSAGEBIRD_DOWN
    31610000502  TRIGGER_TWILIO_DOWN

To see one API fail while the other works (failover), `SandboxState.outages`
makes one misbehave for every number: `{"messagebird": 503}` answers each of
its requests with that status in its own error body (401, 403, 429, 5xx),
`HANG` waits like TRIGGER_HANG, `CUT` places the call and breaks its answer off.

State lives in one event loop's memory, bounded to the newest 1000 verifications.
"""

from __future__ import annotations

import html

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from webapp.provider.sandbox import messagebird, twilio, twilio_resources
from webapp.provider.sandbox.state import (
    CUT,
    HANG,
    MAX_KEPT,
    TRIGGER_CALL_FAILS,
    TRIGGER_HANG,
    TRIGGER_MESSAGEBIRD_DOWN,
    TRIGGER_SERVER_ERROR,
    TRIGGER_TWILIO_DOWN,
    SandboxState,
    SandboxVerification,
)

__all__ = [
    "CUT",
    "HANG",
    "MAX_KEPT",
    "TRIGGER_CALL_FAILS",
    "TRIGGER_HANG",
    "TRIGGER_MESSAGEBIRD_DOWN",
    "TRIGGER_SERVER_ERROR",
    "TRIGGER_TWILIO_DOWN",
    "SandboxState",
    "SandboxVerification",
    "create_sandbox_app",
    "viewing_routes",
]


def viewing_routes(state: SandboxState) -> list[BaseRoute]:
    """The routes that show the calls placed (`GET /_sandbox/calls`)."""

    async def list_calls(request: Request) -> Response:
        return JSONResponse(state.calls())

    return [Route("/_sandbox/calls", list_calls, methods=["GET"])]


def _page(state: SandboxState) -> Route:
    async def page(request: Request) -> Response:
        rows = "".join(
            "<tr><td>+{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n".format(
                *(html.escape(call[key]) for key in ("recipient", "body", "createdDatetime", "status", "api"))
            )
            for call in state.calls()
        )
        return HTMLResponse(
            '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
            "<title>voice2fa sandbox: calls</title></head><body>\n"
            "<h1>Calls placed by the sandbox</h1>\n"
            '<p>Newest first. Reload to see new calls. JSON: <a href="calls">calls</a></p>\n'
            "<table><thead><tr><th>Recipient</th><th>Spoken text</th><th>Time (UTC)</th>"
            f"<th>Status</th><th>API</th></tr></thead><tbody>\n{rows}</tbody></table>\n</body></html>\n"
        )

    return Route("/_sandbox/", page, methods=["GET"])


async def _http_error(request: Request, exc: Exception) -> Response:
    """An unknown path or method, in the error body of the API the path belongs to."""
    assert isinstance(exc, HTTPException)
    if request.url.path.startswith("/v2/"):
        if exc.status_code == 404:
            response = twilio_resources.not_found(request)
        else:
            response = twilio_resources.error(exc.status_code, 20004 if exc.status_code == 405 else 20001, exc.detail)
    else:
        response = messagebird.error(exc.status_code, 98 if exc.status_code == 404 else 21, exc.detail)
    response.headers.update(exc.headers or {})
    return response


def create_sandbox_app(state: SandboxState | None = None) -> Starlette:
    """The whole sandbox: both Verify APIs, the calls as JSON and as a page."""
    state = state or SandboxState()
    routes: list[BaseRoute] = [
        *messagebird.routes(state),
        *twilio.routes(state),
        *viewing_routes(state),
        _page(state),
    ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: _http_error})
    app.state.sandbox = state
    return app
