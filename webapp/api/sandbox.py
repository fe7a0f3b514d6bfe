"""In sandbox mode only: the calls placed for an API client's verification, code included.

The page's `/_sandbox/calls` lists the calls of the browser's own session; a
backend has no session, so it asks by verification, as the client that
created it (HTTP Basic, as for the API): another client's is a 404 like any
id that is not its own. Never mounted with a real provider key.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from webapp.api.endpoints import client_flow, endpoint, owned
from webapp.sandbox_phone import provider_refs
from webapp.state import app_state


@endpoint("view")
async def verification_calls(request: Request) -> Response:
    """GET /_sandbox/verifications/{id}/calls: JSON, newest first, as `/_sandbox/calls` shows them."""
    pending = await owned(request, await client_flow(request))
    refs = await provider_refs(app_state(request)["sessions"], pending.id)
    return JSONResponse(app_state(request)["pages"].placed(refs))


def routes() -> list[BaseRoute]:
    return [Route("/_sandbox/verifications/{id}/calls", verification_calls, methods=["GET"])]
