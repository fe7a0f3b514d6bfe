"""HTTP: read the form, call the flow, render the page or the fragment.

Routes know nothing of MessageBird or SQL. Every `Refusal` becomes a response
in one place, `refused`, so a refusal looks the same wherever it happens.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from webapp.errors import Refusal
from webapp.flow import Flow
from webapp.pages import Pages, is_htmx
from webapp.sandbox_phone import provider_refs

MAX_FORM_BYTES = 32 * 1024
SESSION_KEY = "verification"


class BadForm(Refusal):
    """A form we cannot read at all: too big, not UTF-8, not urlencoded."""

    def __init__(self, message: str, status_code: int = 400) -> None:
        super().__init__("bad_request", message, status_code=status_code)


async def read_form(request: Request) -> dict[str, str]:
    """The urlencoded form, bounded in size and strictly UTF-8."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_FORM_BYTES:
                raise BadForm("That form is far too big.", 413)
    except ClientDisconnect:  # gone, or cut off by the server for sending too slowly (webapp.server)
        raise BadForm("The form did not arrive.", 400) from None
    if body and content_type != "application/x-www-form-urlencoded":
        raise BadForm("Send the form as application/x-www-form-urlencoded.", 415)
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, encoding="utf-8", errors="strict",
                          max_num_fields=20)
    except UnicodeDecodeError:
        raise BadForm("The form could not be read: it is not valid UTF-8.") from None
    except ValueError:
        raise BadForm("The form has too many fields.") from None
    form: dict[str, str] = {}
    for key, value in pairs:
        form.setdefault(key, value)
    return form


def _flow(request: Request) -> Flow:
    return request.state.flow


def _pages(request: Request) -> Pages:
    return request.state.pages


def _ip(request: Request) -> str:
    return request.state.client_ip(request.scope)


def _session_id(request: Request) -> str | None:
    value = request.session.get(SESSION_KEY)
    return value if isinstance(value, str) else None


def _done(request: Request, step: str, message: str, **context: Any) -> Response:
    """A success: the fragment for htmx; otherwise Post/Redirect/Get back to the page."""
    if is_htmx(request):
        return _pages(request).render(request, step, message=message, **context)
    request.session["flash"] = message
    return RedirectResponse(request.scope.get("root_path", "") + "/", status_code=303)


def refused(request: Request, refusal: Refusal, *, keep_form: bool = False, **context: Any) -> Response:
    """The one mapping from a Refusal to a response: its step, message and status.

    `keep_form`: refused before the form was read, so with htmx only the status
    changes and what the person typed stays where it is.
    """
    headers = {"Retry-After": str(refusal.retry_after)} if refusal.retry_after else None
    if keep_form and is_htmx(request):
        return _pages(request).status_only(request, refusal.message, status_code=refusal.status_code, headers=headers)
    step = refusal.step if refusal.pending is not None or refusal.step == "phone" else "phone"
    if step == "phone" and refusal.outcome in ("no_verification", "already_verified"):
        request.session.pop(SESSION_KEY, None)
    return _pages(request).render(
        request,
        step,
        status_code=refusal.status_code,
        headers=headers,
        message=refusal.message,
        field=refusal.field,
        pending=refusal.pending,
        **context,
    )


async def page(request: Request) -> Response:
    """GET /: the step the session is at."""
    message = request.session.pop("flash", "")
    panel = await _phone_panel(request)
    pending = await _flow(request).pending(_session_id(request))
    if pending is None:
        request.session.pop(SESSION_KEY, None)
        verified = request.session.pop("verified", None)
        if isinstance(verified, str):
            return _pages(request).render(request, "result", message=message, verified={"international": verified},
                                          **panel)
        return _pages(request).render(request, "phone", message=message, **panel)
    return _pages(request).render(request, "code", message=message, pending=pending, **panel)


async def verify_start(request: Request) -> Response:
    """POST /verify: parse the number and place the call."""
    try:
        await _flow(request).admit("start", _ip(request))
    except Refusal as refusal:
        return refused(request, refusal, keep_form=True)
    region = ""
    phone = ""
    try:
        form = await read_form(request)
        phone, region = form.get("phone", ""), form.get("country", "")
        pending = await _flow(request).start(phone, region, _ip(request), current_id=_session_id(request))
    except Refusal as refusal:
        return refused(request, refusal, phone_value=phone[:64], region=region)
    request.session[SESSION_KEY] = pending.id
    if pending.reused:
        message = f"We're already calling {pending.international}. Type the code from that call."
    else:
        message = f"Calling {pending.international} now…"
    return _done(request, "code", message, pending=pending)


async def verify_confirm(request: Request) -> Response:
    """POST /confirm: check the code typed."""
    try:
        await _flow(request).admit("check", _ip(request), _session_id(request))
    except Refusal as refusal:
        return refused(request, refusal, keep_form=True)
    try:
        form = await read_form(request)
        verified = await _flow(request).confirm(_session_id(request), form.get("code", ""), _ip(request))
    except Refusal as refusal:
        if refusal.step == "code" and refusal.pending is None:
            refusal.pending = await _flow(request).pending(_session_id(request))
        return refused(request, refusal)
    request.session.pop(SESSION_KEY, None)
    if not is_htmx(request):
        request.session["verified"] = verified.international
    return _done(request, "result", f"{verified.international} is verified.", verified=verified)


async def verify_resend(request: Request) -> Response:
    """POST /resend: "Call me again" for the verification in progress."""
    try:
        await _flow(request).admit("resend", _ip(request), _session_id(request))
    except Refusal as refusal:
        return refused(request, refusal, keep_form=True)
    try:
        await read_form(request)
        pending = await _flow(request).resend(_session_id(request), _ip(request))
    except Refusal as refusal:
        return refused(request, refusal)
    return _done(request, "code", f"Calling {pending.international} again now…", pending=pending)


async def verify_restart(request: Request) -> Response:
    """POST /restart: forget the verification in progress, back to the phone form."""
    await _flow(request).cancel(_session_id(request))
    request.session.pop(SESSION_KEY, None)
    return _done(request, "phone", "")


async def healthz(request: Request) -> Response:
    """GET /healthz: the database answers."""
    ok = await _flow(request).healthy()
    return JSONResponse({"status": "ok" if ok else "database unavailable"}, status_code=200 if ok else 503)


async def _session_refs(request: Request) -> frozenset[str]:
    return await provider_refs(request.state.sessions, _session_id(request))


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


def routes(*, sandbox: bool) -> list[BaseRoute]:
    found: list[BaseRoute] = [
        Route("/", page, methods=["GET"]),
        Route("/verify", verify_start, methods=["POST"]),
        Route("/confirm", verify_confirm, methods=["POST"]),
        Route("/resend", verify_resend, methods=["POST"]),
        Route("/restart", verify_restart, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
    ]
    if sandbox:
        found.append(Route("/_sandbox/phone", sandbox_phone, methods=["GET"]))
        found.append(Route("/_sandbox/calls", sandbox_calls, methods=["GET"]))
    return found

