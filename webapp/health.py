"""GET /healthz: whether the database and the limiter storage answer, and what else an operator watches."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from webapp.state import app_state


async def healthz(request: Request) -> Response:
    """GET /healthz: 200 when the database and the limiter storage answer; 503 says which does not."""
    flow = app_state(request)["flow"]
    database = await flow.healthy()
    limiter = await app_state(request)["limits"].healthy()
    # With RATELIMIT_FAIL_OPEN calls go on without the limiter: it is reported, but not fatal.
    ok = database and (limiter or request.app.state.settings.ratelimit_fail_open)
    body = {
        "status": "ok" if ok else "unavailable",
        "database": "ok" if database else "unavailable",
        "limiter": "ok" if limiter else "unavailable",
        "unrecorded_calls": flow.unrecorded,
        # Reported, never fatal: with a provider skipped the others still place calls.
        "providers": flow.providers,
    }
    return JSONResponse(body, status_code=200 if ok else 503, headers={"Cache-Control": "no-store"})
