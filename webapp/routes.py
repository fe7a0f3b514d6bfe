"""HTTP: read the form, call the flow, render the page or the fragment.

Routes know nothing of MessageBird or SQL. What the page answers, a refusal
(the one place, `refused`) or a success, is webapp.page_replies; /healthz is
webapp.health, and the sandbox phone's routes are webapp.sandbox_phone's.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from webapp import health, page_session, sandbox_phone
from webapp.errors import Refusal
from webapp.flow import Flow
from webapp.forms import read_logged
from webapp.oidc import page as handoff_page
from webapp.oidc.handoff import Handoff
from webapp.outcomes import STORAGE_DOWN
from webapp.page_replies import done, flash, refused, unrecorded
from webapp.pages import Pages, is_htmx
from webapp.state import app_state, ip_of

log = logging.getLogger(__name__)

T = TypeVar("T")

SESSION_KEY = page_session.VERIFICATION
RESULT_KEY = page_session.RESULT
SANDBOX_KEY = page_session.SANDBOX


def _pages(request: Request) -> Pages:
    return app_state(request)["pages"]


def _session_id(request: Request) -> str | None:
    return page_session.get(request.session, SESSION_KEY)


async def page(request: Request) -> Response:
    """GET /: the step the session is at."""
    flow, handoff = await handoff_page.begin(request)
    notice = ""
    if handoff is not None and handoff.state == "finished":
        handoff_page.end(request)
        handoff, notice = None, handoff_page.ENDED
    elif handoff is not None and handoff.state == "expired":
        notice = handoff_page.TIMED_OUT.format(name=handoff.client_name)
    panel = await sandbox_phone.phone_panel(request)
    pending = await flow.pending(_session_id(request))
    if pending is None:
        request.session.pop(SESSION_KEY, None)
        if handoff is not None and handoff.open:
            # Verified for this hand-off, but the form that did it could not go back to the site.
            result_id = request.session.get(RESULT_KEY)
            verified = await flow.verified_since(result_id if isinstance(result_id, str) else None, handoff.began)
            if verified is not None:
                return _pages(request).render(
                    request,
                    "result",
                    message=flash(request, verified.international),
                    verified=verified,
                    handoff_verified=True,
                    **panel,
                )
        result_id = request.session.pop(RESULT_KEY, None)
        verified = None if handoff else await flow.result(result_id if isinstance(result_id, str) else None)
        if verified is not None:
            message = flash(request, verified.international)
            return _pages(request).render(request, "result", message=message, verified=verified, **panel)
        request.session.pop("flash", None)
        return _pages(request).render(
            request, "phone", message=notice, message_kind="error" if notice else "info", **panel
        )
    message = flash(request, pending.international)
    return _pages(request).render(
        request, "code", message=notice or message, message_kind="error" if notice else "info", pending=pending, **panel
    )


@dataclass(frozen=True)
class _Submitted(Generic[T]):
    """A form the flow accepted: what the flow returned, the form, the session's hand-off."""

    result: T
    form: dict[str, str]
    handoff: Handoff | None


async def _submit(
    request: Request,
    kind: str,
    act: Callable[[Flow, dict[str, str]], Awaitable[T]],
    echo: Callable[[dict[str, str]], dict[str, Any]] | None = None,
) -> _Submitted[T] | Response:
    """The skeleton of a POST of the page: admit the client, read its form, act, or answer the refusal.

    Refused before the form is read, what the person typed stays (`keep_form`); refused after,
    `echo(form)` is what the page shows again.
    """
    flow, handoff = await handoff_page.begin(request)
    try:
        await flow.admit(kind, ip_of(request), None if kind == "start" else _session_id(request))
    except Refusal as refusal:
        return refused(request, refusal, keep_form=True)
    form: dict[str, str] = {}
    try:
        form = await read_logged(request, flow.attempts, kind, ip_of(request))
        result = await act(flow, form)
    except Refusal as refusal:
        return refused(request, refusal, **(echo(form) if echo else {}))
    return _Submitted(result, form, handoff)


async def verify_start(request: Request) -> Response:
    """POST /verify: parse the number and place the call."""
    submitted = await _submit(
        request,
        "start",
        lambda flow, form: flow.start(
            form.get("phone", ""), form.get("country", ""), ip_of(request), current_id=_session_id(request)
        ),
        echo=lambda form: {"phone_value": form.get("phone", "")[:64], "region": form.get("country", "")},
    )
    if isinstance(submitted, Response):
        return submitted
    pending = submitted.result
    request.session[SESSION_KEY] = pending.id
    if request.state.sandbox is not None:
        request.session[SANDBOX_KEY] = pending.id
    if not pending.recorded:
        return unrecorded(request, pending)
    return done(request, "code", "reused" if pending.reused else "calling", pending.international, pending=pending)


async def verify_confirm(request: Request) -> Response:
    """POST /confirm: check the code typed."""
    submitted = await _submit(
        request,
        "check",
        lambda flow, form: flow.confirm(
            _session_id(request), form.get("code", ""), ip_of(request), for_call=form.get("call")
        ),
    )
    if isinstance(submitted, Response):
        return submitted
    verified, handoff = submitted.result, submitted.handoff
    request.session.pop(SESSION_KEY, None)
    if handoff is not None:
        back = await handoff_page.hand_back(request, handoff, verified, submitted.form.get(handoff_page.TAG_FIELD))
        if back is not None:
            return back
    if not is_htmx(request):
        request.session[RESULT_KEY] = verified.id
    return done(request, "result", "verified", verified.international, verified=verified)


async def verify_resend(request: Request) -> Response:
    """POST /resend: "Call me again" for the verification in progress."""
    submitted = await _submit(request, "resend", lambda flow, _: flow.resend(_session_id(request), ip_of(request)))
    if isinstance(submitted, Response):
        return submitted
    pending = submitted.result
    if not pending.recorded:
        return unrecorded(request, pending)
    return done(request, "code", "calling_again", pending.international, pending=pending)


async def verify_restart(request: Request) -> Response:
    """POST /restart: forget the verification in progress, back to the phone form."""
    flow, _ = await handoff_page.begin(request)  # the phone form still says for whom
    try:
        await flow.cancel(_session_id(request), ip_of(request))
    except Refusal as refusal:
        return refused(request, refusal)
    request.session.pop(SESSION_KEY, None)
    return done(request, "phone", "")


async def storage_unavailable(request: Request, exc: Exception) -> Response:
    """Any database failure (or SQLite file trouble) in a request: a 503 with a message, never a bare 500."""
    log.error("%s %s: the database did not answer: %s", request.method, request.url.path, type(exc).__name__)
    headers = {"Retry-After": "30"}
    if request.url.path.removeprefix(request.scope.get("root_path", "")) not in PAGE_PATHS:
        return PlainTextResponse(STORAGE_DOWN, status_code=503, headers={**headers, "Cache-Control": "no-store"})
    if is_htmx(request):
        return _pages(request).status_only(request, STORAGE_DOWN, status_code=503, headers=headers)
    return _pages(request).render(request, "phone", status_code=503, headers=headers, message=STORAGE_DOWN)


#: The paths of the verification page, whose failures are shown on the page.
PAGE_PATHS = frozenset({"/", "/verify", "/confirm", "/resend", "/restart", "/oidc/cancel", "/oidc/continue"})


def routes(*, sandbox: bool, handoff: bool = False) -> list[BaseRoute]:
    found: list[BaseRoute] = [
        Route("/", page, methods=["GET"]),
        Route("/verify", verify_start, methods=["POST"]),
        Route("/confirm", verify_confirm, methods=["POST"]),
        Route("/resend", verify_resend, methods=["POST"]),
        Route("/restart", verify_restart, methods=["POST"]),
        Route("/healthz", health.healthz, methods=["GET"]),
    ]
    if handoff:
        found += handoff_page.routes()
    if sandbox:
        found += sandbox_phone.routes()
    return found
