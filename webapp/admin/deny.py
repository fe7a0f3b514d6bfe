"""The operators' deny-list pages: the list, the confirmation step, and the action itself.

Every handler is `operator_only`; the POST has passed the session's form
token check before it gets here. The confirmation page and the action read
their fields through the one `DenyForm.read`, so both refuse the same input
with the same message and status (400). What `?done=` may say afterwards is
a key of `pages.DONE`, never text from the link.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from webapp import circuit, denylist
from webapp.admin.auth import operator_only
from webapp.admin.pages import now, render
from webapp.denylist import Entry
from webapp.state import app_state

ACTIONS = ("deny", "allow")


@dataclass(frozen=True)
class DenyForm:
    """A deny or allow as typed: the entry it names, or the one thing wrong with it."""

    action: str
    value: str
    reason: str
    back: str
    entry: Entry | None
    error: str

    @classmethod
    def read(cls, fields: Mapping[str, str], *, default_action: str = "") -> DenyForm:
        """Check the fields of the confirmation link or of the form that acts."""
        action = fields.get("action", default_action)
        value = fields.get("value", "")[:100]
        reason = " ".join(fields.get("reason", "").split())
        back = _back(fields.get("back", ""))
        entry, error = None, ""
        try:
            entry = denylist.parse_entry(value)
        except ValueError as exc:
            error = str(exc)
        if not error and action not in ACTIONS:
            error = "The action is deny or allow."
        elif not error and any(unicodedata.category(char) == "Cc" for char in reason):
            error = "The reason can't hold control characters."
        if action not in ACTIONS:
            action = "deny"  # the page shows a deny form to correct, never an unknown action
        return cls(action, value, reason, back, entry, error)

    def page(self, request: Request) -> Response:
        """The confirmation page for these fields (400 with the error when they can't be used)."""
        return render(
            request,
            "admin_deny.html",
            status_code=400 if self.error else 200,
            action=self.action,
            value=self.value,
            entry=self.entry,
            error=self.error,
            back=self.back,
        )


@operator_only
async def deny_list(request: Request) -> Response:
    """GET /admin/deny-list: the entries, the operators' recent actions, the circuit breaks."""
    async with app_state(request)["sessions"]() as session:
        entries = await denylist.entries(session)
        actions = await denylist.recent_actions(session)
        breaks = await circuit.recent_breaks(session)
    return render(request, "admin_denylist.html", entries=entries, actions=actions, breaks=breaks, now=now(request))


@operator_only
async def deny_confirm(request: Request) -> Response:
    """GET /admin/deny?action=deny|allow&value=…: ask before acting."""
    return DenyForm.read(request.query_params, default_action="deny").page(request)


@operator_only
async def deny_apply(request: Request) -> Response:
    """POST /admin/deny: deny or allow again, and record who did it (the form token is checked already)."""
    form = DenyForm.read(request.state.form)
    if form.error or form.entry is None:
        return form.page(request)
    state = app_state(request)
    operator: str = request.state.operator
    async with state["sessions"]() as session:
        changed = await denylist.apply(
            session, form.action, form.entry, operator=operator, reason=form.reason, now=now(request)
        )
    if changed:
        state["guard"].deny_list.changed()  # this process at once; the others within a second
    if form.action == "deny":
        done = "denied" if changed else "already-denied"
    else:
        done = "allowed" if changed else "not-denied"
    separator = "&" if "?" in form.back else "?"
    return RedirectResponse(f"{form.back}{separator}{urlencode({'done': done})}", status_code=303)


def _back(path: str) -> str:
    """Where to return after an action: an operators' page of this site, or the deny list."""
    if path.startswith("/admin/") and "//" not in path and "\\" not in path:
        return path[:300]
    return "/admin/deny-list"
