"""The operators' deny-list pages: the list, the confirmation step, and the action itself.

Every handler is `operator_only`; the POST has passed the session's form
token check before it gets here. What `?done=` may say afterwards is a key of
`admin.DONE`, never text from the link.
"""

from __future__ import annotations

import unicodedata
from datetime import datetime
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from webapp import circuit, denylist
from webapp.operators import operator_only


def _now(request: Request) -> datetime:
    return request.state.clock()


@operator_only
async def deny_list(request: Request) -> Response:
    """GET /admin/deny-list: the entries, the operators' recent actions, the circuit breaks."""
    async with request.state.sessions() as session:
        entries = await denylist.entries(session)
        actions = await denylist.recent_actions(session)
        breaks = await circuit.recent_breaks(session)
    return request.state.admin_pages.render(
        request, "admin_denylist.html", entries=entries, actions=actions, breaks=breaks, now=_now(request),
    )


@operator_only
async def deny_confirm(request: Request) -> Response:
    """GET /admin/deny?action=deny|allow&value=…: ask before acting."""
    action = request.query_params.get("action", "deny")
    value = request.query_params.get("value", "")[:100]
    try:
        entry = denylist.parse_entry(value)
        error = ""
    except ValueError as exc:
        entry, error = None, str(exc)
    if action not in ("deny", "allow"):
        entry, error = None, "The action is deny or allow."
    return request.state.admin_pages.render(
        request, "admin_deny.html", status_code=400 if error else 200, action=action, value=value, entry=entry,
        error=error, back=_back(request.query_params.get("back", "")),
    )


@operator_only
async def deny_apply(request: Request) -> Response:
    """POST /admin/deny: deny or allow again, and record who did it (the form token is checked already)."""
    form = request.state.form
    action, value, reason = form.get("action", ""), form.get("value", "")[:100], " ".join(form.get("reason", "").split())
    back = _back(form.get("back", ""))
    try:
        entry = denylist.parse_entry(value)
    except ValueError as exc:
        return request.state.admin_pages.render(request, "admin_deny.html", status_code=422, action=action, value=value,
                                                 entry=None, error=str(exc), back=back)
    error = ""
    if action not in ("deny", "allow"):
        action, error = "deny", "The action is deny or allow."
    elif any(unicodedata.category(char) == "Cc" for char in reason):
        error = "The reason can't hold control characters."
    if error:
        return request.state.admin_pages.render(request, "admin_deny.html", status_code=422, action=action, value=value,
                                                 entry=entry, error=error, back=back)
    now = _now(request)
    async with request.state.sessions() as session:
        if action == "deny":
            changed = await denylist.add(session, entry, reason=reason, by="admin:" + request.state.operator, now=now)
        else:
            changed = await denylist.remove(session, entry)
        if changed:
            request.state.guard.deny_list.changed()  # this process at once; the others within a second
            await denylist.record(session, operator=request.state.operator, action=action, entry=entry,
                                  reason=reason, now=now)
    done = ("denied" if changed else "already-denied") if action == "deny" else ("allowed" if changed else "not-denied")
    separator = "&" if "?" in back else "?"
    return RedirectResponse(f"{back}{separator}{urlencode({'done': done})}", status_code=303)


def _back(path: str) -> str:
    """Where to return after an action: an operators' page of this site, or the deny list."""
    if path.startswith("/admin/") and "//" not in path and "\\" not in path:
        return path[:300]
    return "/admin/deny-list"


def routes() -> list[BaseRoute]:
    return [
        Route("/admin/deny-list", deny_list, methods=["GET"]),
        Route("/admin/deny", deny_confirm, methods=["GET"]),
        Route("/admin/deny", deny_apply, methods=["POST"]),
    ]
