"""The JSON API's routes under /api/v1, and its answers where no handler is: 404 and 405 problem details.

A path's handlers are chosen by method here (`_ByMethod`), so that a method
the path does not take is problem details with `Allow` rather than Starlette's
plain 405; the handlers themselves are webapp.api.endpoints.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route, Router, request_response
from starlette.types import Receive, Scope, Send

from webapp.api.endpoints import (
    PREFIX,
    Handler,
    cancel_verification,
    check_verification,
    create_verification,
    endpoint,
    get_verification,
    openapi_document,
    reference,
    resend_verification,
)
from webapp.api.problems import ApiRefusal, problem
from webapp.outcomes import Outcome

NOTHING_THERE = f"There is nothing at that path. The API is described at {PREFIX}/openapi.json."


@endpoint("none")
async def not_found(request: Request) -> Response:
    raise ApiRefusal(Outcome.NOT_FOUND, NOTHING_THERE)


async def http_exception(request: Request, exc: Exception) -> Response:
    """The app's own HTTP errors (a path no route takes, e.g. one with a newline): problem details under /api/.

    Elsewhere what Starlette answers by default.
    """
    assert isinstance(exc, HTTPException)
    # Raised inside the mount, the scope's root_path has the mount's prefix; app_root_path is the app's.
    root = request.scope.get("app_root_path", request.scope.get("root_path", ""))
    if request.url.path.removeprefix(root).startswith("/api/"):
        outcome = Outcome.METHOD_NOT_ALLOWED if exc.status_code == 405 else Outcome.NOT_FOUND
        return problem(ApiRefusal(outcome, NOTHING_THERE))
    if exc.status_code in (204, 304):
        return Response(status_code=exc.status_code, headers=exc.headers)
    return PlainTextResponse(exc.detail, status_code=exc.status_code, headers=exc.headers)


class _ByMethod:
    """One path's handlers by method; any other method is 405 problem details with `Allow`.

    An ASGI app rather than a function, so that Starlette's Route leaves every method to it.
    """

    def __init__(self, **handlers: Handler) -> None:
        if "GET" in handlers:
            handlers["HEAD"] = handlers["GET"]
        self._handlers = handlers
        self._app = request_response(self._dispatch)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._app(scope, receive, send)

    async def _dispatch(self, request: Request) -> Response:
        handler = self._handlers.get(request.method)
        if handler is None:
            refusal = ApiRefusal(
                Outcome.METHOD_NOT_ALLOWED,
                f"{request.method[:20]} is not allowed here.",
                headers={"Allow": ", ".join(self._handlers)},
            )
            return problem(refusal)
        return await handler(request)


def routes() -> list[BaseRoute]:
    """The API, mounted at /api/v1; unknown paths under it are 404 problem details."""
    api_routes = [
        Route("/verifications", _ByMethod(POST=create_verification)),
        Route("/verifications/{id}", _ByMethod(GET=get_verification, DELETE=cancel_verification)),
        Route("/verifications/{id}/check", _ByMethod(POST=check_verification)),
        Route("/verifications/{id}/resend", _ByMethod(POST=resend_verification)),
        Route("/openapi.json", _ByMethod(GET=openapi_document)),
        Route("/docs", _ByMethod(GET=reference)),
    ]
    return [Mount(PREFIX, app=Router(api_routes, redirect_slashes=False, default=request_response(not_found)))]
