"""What the verification page answers: a refusal, a success, the message a redirect left, a call not written down.

Every `Refusal` of the page becomes a response in one place, `refused`, so a
refusal looks the same wherever it happens. A success is the fragment for htmx
and otherwise a Post/Redirect/Get back to the page (`done`), whose message the
next GET finds in the session (`flash`).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from webapp import page_session
from webapp.errors import Refusal
from webapp.outcomes import Form
from webapp.pages import Pages, is_htmx
from webapp.progress import Pending
from webapp.state import app_state

#: What a success says. The session cookie is signed, not encrypted, so a
#: redirect keeps only the key there; the page fills in the number from the database.
MESSAGES = {
    "calling": "Calling {number} now…",
    "reused": "We're already calling {number}. Type the code from that call.",
    "calling_again": "Calling {number} again now…",
    "verified": "{number} is verified.",
}
#: The call was placed, but the database was away when it was to be written down.
UNRECORDED = (
    "We're calling {number}, but we're having trouble on our side: "
    "if the code isn't accepted at first, wait a moment and try again."
)


def _pages(request: Request) -> Pages:
    return app_state(request)["pages"]


def done(request: Request, step: str, message_key: str, number: str = "", **context: Any) -> Response:
    """A success: the fragment for htmx; otherwise Post/Redirect/Get back to the page."""
    if is_htmx(request):
        message = MESSAGES[message_key].format(number=number) if message_key else ""
        return _pages(request).render(request, step, message=message, **context)
    if message_key:
        request.session["flash"] = message_key
    return RedirectResponse(request.scope.get("root_path", "") + "/", status_code=303)


def flash(request: Request, number: str) -> str:
    """The message a redirect left in the session, with the number filled in."""
    key = request.session.pop("flash", None)
    return MESSAGES[key].format(number=number) if isinstance(key, str) and key in MESSAGES else ""


def refused(request: Request, refusal: Refusal, *, keep_form: bool = False, **context: Any) -> Response:
    """The one mapping from a Refusal to a response: the table's form and status (webapp.outcomes), its message.

    `keep_form`: refused before the form was read, so with htmx only the status
    changes and what the person typed stays where it is.
    """
    headers = {"Retry-After": str(refusal.retry_after)} if refusal.retry_after else None
    if keep_form and is_htmx(request):
        return _pages(request).status_only(request, refusal.message, status_code=refusal.status_code, headers=headers)
    form = refusal.told.form
    if form == Form.RESULT and refusal.verified is not None:
        step = "result"
    else:
        step = "code" if form == Form.CURRENT and refusal.pending is not None else "phone"
    if form != Form.CURRENT:  # the verification is over: the session forgets it
        request.session.pop(page_session.VERIFICATION, None)
    return _pages(request).render(
        request,
        step,
        status_code=refusal.status_code,
        headers=headers,
        message=refusal.message,
        field=refusal.field,
        pending=refusal.pending,
        verified=refusal.verified,
        **context,
    )


def unrecorded(request: Request, pending: Pending) -> Response:
    """The call is on its way but not written down yet (webapp.outbox): a 503 that still shows the code form."""
    message = UNRECORDED.format(number=pending.international)
    return _pages(request).render(
        request, "code", status_code=503, headers={"Retry-After": "5"}, message=message, pending=pending
    )
