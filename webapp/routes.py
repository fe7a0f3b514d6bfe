"""HTTP: read the form, call the flow, render the page or the fragment.

Routes know nothing of MessageBird or SQL. Every `Refusal` becomes a response
in one place, `refused`, so a refusal looks the same wherever it happens.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from webapp import page_session
from webapp.errors import Refusal
from webapp.flow import Flow
from webapp.forms import read_logged
from webapp.oidc import page as handoff_page
from webapp.oidc.handoff import Handoff
from webapp.outcomes import STORAGE_DOWN, Form
from webapp.pages import Pages, is_htmx
from webapp.progress import Pending
from webapp.sandbox_phone import provider_refs
from webapp.state import app_state

log = logging.getLogger(__name__)

T = TypeVar("T")

SESSION_KEY = page_session.VERIFICATION
RESULT_KEY = page_session.RESULT
SANDBOX_KEY = page_session.SANDBOX

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


def _flow(request: Request) -> Flow:
    return app_state(request)["flow"]


def _pages(request: Request) -> Pages:
    return app_state(request)["pages"]


def _ip(request: Request) -> str:
    return app_state(request)["client_ip"](request.scope)


def _session_id(request: Request) -> str | None:
    value = request.session.get(SESSION_KEY)
    return value if isinstance(value, str) else None


def _done(request: Request, step: str, message_key: str, number: str = "", **context: Any) -> Response:
    """A success: the fragment for htmx; otherwise Post/Redirect/Get back to the page."""
    if is_htmx(request):
        message = MESSAGES[message_key].format(number=number) if message_key else ""
        return _pages(request).render(request, step, message=message, **context)
    if message_key:
        request.session["flash"] = message_key
    return RedirectResponse(request.scope.get("root_path", "") + "/", status_code=303)


def _flash(request: Request, number: str) -> str:
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
        request.session.pop(SESSION_KEY, None)
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


async def page(request: Request) -> Response:
    """GET /: the step the session is at."""
    flow, handoff = await handoff_page.begin(request)
    notice = ""
    if handoff is not None and handoff.state == "finished":
        handoff_page.end(request)
        handoff, notice = None, handoff_page.ENDED
    elif handoff is not None and handoff.state == "expired":
        notice = handoff_page.TIMED_OUT.format(name=handoff.client_name)
    panel = await _phone_panel(request)
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
                    message=_flash(request, verified.international),
                    verified=verified,
                    handoff_verified=True,
                    **panel,
                )
        result_id = request.session.pop(RESULT_KEY, None)
        verified = None if handoff else await flow.result(result_id if isinstance(result_id, str) else None)
        if verified is not None:
            message = _flash(request, verified.international)
            return _pages(request).render(request, "result", message=message, verified=verified, **panel)
        request.session.pop("flash", None)
        return _pages(request).render(
            request, "phone", message=notice, message_kind="error" if notice else "info", **panel
        )
    message = _flash(request, pending.international)
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
        await flow.admit(kind, _ip(request), None if kind == "start" else _session_id(request))
    except Refusal as refusal:
        return refused(request, refusal, keep_form=True)
    form: dict[str, str] = {}
    try:
        form = await read_logged(request, flow.attempts, kind, _ip(request))
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
            form.get("phone", ""), form.get("country", ""), _ip(request), current_id=_session_id(request)
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
        return _unrecorded(request, pending)
    return _done(request, "code", "reused" if pending.reused else "calling", pending.international, pending=pending)


async def verify_confirm(request: Request) -> Response:
    """POST /confirm: check the code typed."""
    submitted = await _submit(
        request,
        "check",
        lambda flow, form: flow.confirm(
            _session_id(request), form.get("code", ""), _ip(request), for_call=form.get("call")
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
    return _done(request, "result", "verified", verified.international, verified=verified)


async def verify_resend(request: Request) -> Response:
    """POST /resend: "Call me again" for the verification in progress."""
    submitted = await _submit(request, "resend", lambda flow, _: flow.resend(_session_id(request), _ip(request)))
    if isinstance(submitted, Response):
        return submitted
    pending = submitted.result
    if not pending.recorded:
        return _unrecorded(request, pending)
    return _done(request, "code", "calling_again", pending.international, pending=pending)


async def verify_restart(request: Request) -> Response:
    """POST /restart: forget the verification in progress, back to the phone form."""
    flow, _ = await handoff_page.begin(request)  # the phone form still says for whom
    try:
        await flow.cancel(_session_id(request), _ip(request))
    except Refusal as refusal:
        return refused(request, refusal)
    request.session.pop(SESSION_KEY, None)
    return _done(request, "phone", "")


def _unrecorded(request: Request, pending: Pending) -> Response:
    """The call is on its way but not written down yet (webapp.outbox): a 503 that still shows the code form."""
    message = UNRECORDED.format(number=pending.international)
    return _pages(request).render(
        request, "code", status_code=503, headers={"Retry-After": "5"}, message=message, pending=pending
    )


async def storage_unavailable(request: Request, exc: Exception) -> Response:
    """Any database failure (or SQLite file trouble) in a request: a 503 with a message, never a bare 500."""
    log.error("%s %s: the database did not answer: %s", request.method, request.url.path, type(exc).__name__)
    headers = {"Retry-After": "30"}
    if request.url.path.removeprefix(request.scope.get("root_path", "")) not in PAGE_PATHS:
        return PlainTextResponse(STORAGE_DOWN, status_code=503, headers={**headers, "Cache-Control": "no-store"})
    if is_htmx(request):
        return _pages(request).status_only(request, STORAGE_DOWN, status_code=503, headers=headers)
    return _pages(request).render(request, "phone", status_code=503, headers=headers, message=STORAGE_DOWN)


async def healthz(request: Request) -> Response:
    """GET /healthz: 200 when the database and the limiter storage answer; 503 says which does not."""
    database = await _flow(request).healthy()
    limiter = await app_state(request)["limits"].healthy()
    # With RATELIMIT_FAIL_OPEN calls go on without the limiter: it is reported, but not fatal.
    ok = database and (limiter or request.app.state.settings.ratelimit_fail_open)
    body = {
        "status": "ok" if ok else "unavailable",
        "database": "ok" if database else "unavailable",
        "limiter": "ok" if limiter else "unavailable",
        "unrecorded_calls": _flow(request).unrecorded,
        # Reported, never fatal: with a provider skipped the others still place calls.
        "providers": _flow(request).providers,
    }
    return JSONResponse(body, status_code=200 if ok else 503, headers={"Cache-Control": "no-store"})


async def _session_refs(request: Request) -> frozenset[str]:
    """The provider ids of this session's calls: its verification in progress, else the last one it had."""
    last = request.session.get(SANDBOX_KEY)
    return await provider_refs(
        app_state(request)["sessions"], _session_id(request) or (last if isinstance(last, str) else None)
    )


async def _phone_panel(request: Request) -> dict[str, Any]:
    """For a whole page in sandbox mode: the calls of this session, for the phone panel."""
    if request.state.sandbox is None:
        return {}
    return {"calls": _pages(request).calls(await _session_refs(request))}


async def sandbox_phone(request: Request) -> Response:
    """GET /_sandbox/phone: this session's calls, for the sandbox phone (the panel polls it)."""
    if not is_htmx(request):
        return RedirectResponse(request.scope.get("root_path", "") + "/", status_code=303)
    return _pages(request).block(request, "page.html", "sandbox_calls", **await _phone_panel(request))


async def sandbox_calls(request: Request) -> Response:
    """GET /_sandbox/calls: this session's calls as JSON, newest first (never another session's)."""
    return JSONResponse(_pages(request).placed(await _session_refs(request)))


#: The paths of the verification page, whose failures are shown on the page.
PAGE_PATHS = frozenset({"/", "/verify", "/confirm", "/resend", "/restart", "/oidc/cancel", "/oidc/continue"})


def routes(*, sandbox: bool, handoff: bool = False) -> list[BaseRoute]:
    found: list[BaseRoute] = [
        Route("/", page, methods=["GET"]),
        Route("/verify", verify_start, methods=["POST"]),
        Route("/confirm", verify_confirm, methods=["POST"]),
        Route("/resend", verify_resend, methods=["POST"]),
        Route("/restart", verify_restart, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
    ]
    if handoff:
        found += handoff_page.routes()
    if sandbox:
        found.append(Route("/_sandbox/phone", sandbox_phone, methods=["GET"]))
        found.append(Route("/_sandbox/calls", sandbox_calls, methods=["GET"]))
    return found
