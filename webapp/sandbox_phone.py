"""The sandbox phone: each browser sees the calls of its own session only.

In sandbox mode the page shows the text each call speaks, code included, so
one person's calls must never reach another's screen. The session cookie holds
only the verification's opaque id; the server keeps which calls (provider ids)
belong to it: its current one, and those of its attempts rows ("Call me again"
replaces the current one). The sandbox's calls are matched on those ids. The
page's phone panel, the fragment it polls (`/_sandbox/phone`) and the app's
`/_sandbox/calls` show a session's calls through `provider_refs`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from webapp import page_session
from webapp.models import Attempt, Verification
from webapp.pages import is_htmx
from webapp.state import app_state


async def provider_refs(sessions: async_sessionmaker[AsyncSession], verification_id: str | None) -> frozenset[str]:
    """The provider ids of every call placed for this verification."""
    if not verification_id:
        return frozenset()
    of_attempts = select(Attempt.provider_ref).where(
        Attempt.verification_id == verification_id, Attempt.provider_ref.is_not(None)
    )
    current = select(Verification.provider_ref).where(
        Verification.id == verification_id, Verification.provider_ref.is_not(None)
    )
    async with sessions() as session:
        return frozenset(ref for ref in await session.scalars(of_attempts.union(current)) if ref)


async def _session_refs(request: Request) -> frozenset[str]:
    """The provider ids of this session's calls: its verification in progress, else the last one it had."""
    session = request.session
    return await provider_refs(
        app_state(request)["sessions"],
        page_session.get(session, page_session.VERIFICATION) or page_session.get(session, page_session.SANDBOX),
    )


async def phone_panel(request: Request) -> dict[str, Any]:
    """For a whole page in sandbox mode: the calls of this session, for the phone panel."""
    if request.state.sandbox is None:
        return {}
    return {"calls": app_state(request)["pages"].calls(await _session_refs(request))}


async def sandbox_phone(request: Request) -> Response:
    """GET /_sandbox/phone: this session's calls, for the sandbox phone (the panel polls it)."""
    if not is_htmx(request):
        return RedirectResponse(request.scope.get("root_path", "") + "/", status_code=303)
    return app_state(request)["pages"].block(request, "page.html", "sandbox_calls", **await phone_panel(request))


async def sandbox_calls(request: Request) -> Response:
    """GET /_sandbox/calls: this session's calls as JSON, newest first (never another session's)."""
    return JSONResponse(app_state(request)["pages"].placed(await _session_refs(request)))


def routes() -> list[BaseRoute]:
    """The sandbox phone's routes, mounted in sandbox mode only."""
    return [
        Route("/_sandbox/phone", sandbox_phone, methods=["GET"]),
        Route("/_sandbox/calls", sandbox_calls, methods=["GET"]),
    ]
