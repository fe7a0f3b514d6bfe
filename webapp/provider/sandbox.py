"""An offline server that speaks the MessageBird Verify REST API.

Same paths as https://rest.messagebird.com, same `Authorization: AccessKey …`
header (any non-empty key passes), same verify object and errors envelope
`{"errors": [{"code", "description", "parameter"}]}`. Nothing leaves the
process: each "call" is kept in memory and listed, token included, at
`GET /_sandbox/calls` (JSON, newest first) and `GET /_sandbox/`: every call to
whoever asks, so `voice2fa sandbox` binds loopback only unless told otherwise.
(The app in sandbox mode serves its own `/_sandbox/calls`, of the asking
session's calls only: webapp.sandbox_phone.)

    POST   /verify              recipient (required), type, originator, reference,
                                template (`%token`), language, voice, timeout (30),
                                tokenLength (6-10), maxAttempts (1-10); JSON or
                                form-encoded; 201 Created with the verify object
    GET    /verify/{id}         the object: status sent|verified|expired|failed
    GET    /verify/{id}?token=  200 "verified", or 422 "The token is invalid." /
                                "The token has expired." / "The token has already
                                been processed."; an *empty* token answers 200 with
                                the object unchanged, like the real API, which is
                                why "no error" never means "verified"
    DELETE /verify/{id}         204; the verification is 404 from then on

Create answers 201 as MessageBird's API description does; its SDKs accept 200
and 201 alike, and so should any client. Each wrong token uses an attempt; at
maxAttempts the verification is "failed". Once the clock reaches
validUntilDatetime a "sent" verification is "expired".

Recipients that make failures visible (digits without "+"; each a valid Dutch
mobile number, so phone policy lets them through):

    31610000500  TRIGGER_SERVER_ERROR  500 "Internal error", no call placed
    31610000504  TRIGGER_HANG          waits `hang_seconds`, then the same 500
    31610000486  TRIGGER_CALL_FAILS    created, but the call fails: status "failed"

State lives in one event loop's memory, bounded to the newest 1000 verifications.
"""

from __future__ import annotations

import html
import json
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

TRIGGER_SERVER_ERROR = "31610000500"
TRIGGER_HANG = "31610000504"
TRIGGER_CALL_FAILS = "31610000486"

MAX_KEPT = 1000
TYPES = ("sms", "flash", "tts", "email")
#: MessageBird's upper bound for `timeout` (three days); also keeps the date maths finite.
MAX_TIMEOUT = 259_200

Endpoint = Callable[[Request], Awaitable[Response]]


@dataclass(slots=True)
class _Verification:
    id: str
    message_id: str
    recipient: str
    type: str
    originator: str | None
    reference: str | None
    token: str
    body: str
    created: datetime
    valid_until: datetime
    max_attempts: int
    attempts: int = 0
    status: str = "sent"


class SandboxState:
    """The verifications the sandbox has made, by id, oldest first."""

    def __init__(self, clock: Callable[[], datetime] | None = None, hang_seconds: float = 30.0) -> None:
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self.hang_seconds = hang_seconds
        self.verifications: dict[str, _Verification] = {}

    def now(self) -> datetime:
        return self.clock().astimezone(timezone.utc)

    def add(self, verification: _Verification) -> None:
        self.verifications[verification.id] = verification
        while len(self.verifications) > MAX_KEPT:
            del self.verifications[next(iter(self.verifications))]

    def get(self, verification_id: str) -> _Verification | None:
        """The live verification with that id, expired if its time has come."""
        verification = self.verifications.get(verification_id)
        if verification is None or verification.status == "deleted":
            return None
        return self._refresh(verification)

    def _refresh(self, verification: _Verification) -> _Verification:
        if verification.status == "sent" and self.now() >= verification.valid_until:
            verification.status = "expired"
        return verification

    def calls(self) -> list[dict]:
        """The calls placed, newest first."""
        return [
            {
                "id": v.id,
                "recipient": v.recipient,
                "type": v.type,
                "token": v.token,
                "body": v.body,
                "createdDatetime": _iso(v.created),
                "status": self._refresh(v).status,
            }
            for v in reversed(self.verifications.values())
        ]


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def _error(status_code: int, code: int, description: str, parameter: str | None = None) -> JSONResponse:
    body = {"errors": [{"code": code, "description": description, "parameter": parameter}]}
    return JSONResponse(body, status_code=status_code)


class _Invalid(Exception):
    def __init__(self, response: JSONResponse) -> None:
        self.response = response


def _invalid(parameter: str, description: str, code: int = 10) -> _Invalid:
    return _Invalid(_error(422, code, description, parameter))


def _require_key(endpoint: Endpoint) -> Endpoint:
    async def guarded(request: Request) -> Response:
        scheme, _, key = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "accesskey" or not key.strip():
            return _error(401, 2, "Request not allowed (incorrect access_key)", "access_key")
        return await endpoint(request)

    return guarded


async def _read_params(request: Request) -> dict[str, Any]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        async with request.form() as form:
            return {k: v for k, v in form.items() if isinstance(v, str)}
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):  # ValueError covers bad UTF-8 and bad JSON
        raise _Invalid(_error(400, 21, "Request body is not valid JSON")) from None
    if not isinstance(data, dict):
        raise _Invalid(_error(400, 21, "Request body must be a JSON object"))
    return data


def _recipient(params: dict[str, Any]) -> str:
    value = params.get("recipient")
    if value is None or value == "":
        raise _invalid("recipient", "no (correct) recipients found", code=9)
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, str):
        value = value.strip().removeprefix("+")
        if re.fullmatch(r"[0-9]{1,15}", value) and not value.startswith("0"):
            return value
    raise _invalid("recipient", "recipient must be a phone number in international format")


def _integer(params: dict[str, Any], name: str, default: int, low: int, high: int) -> int:
    value = params.get(name)
    if value is None or value == "":
        return default
    if isinstance(value, str) and re.fullmatch(r"[0-9]{1,9}", value.strip()):
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and low <= value <= high:
        return value
    raise _invalid(name, f"{name} must be an integer from {low} to {high}")


def _text(params: dict[str, Any], name: str, default: str | None) -> str | None:
    value = params.get(name)
    if value is None or value == "":
        return default
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str):
        return value
    raise _invalid(name, f"{name} must be a string")


class _SandboxApi:
    """The endpoints, over one SandboxState."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state

    def _object(self, request: Request, v: _Verification) -> dict[str, Any]:
        base = str(request.base_url).rstrip("/")
        messages = "voicemessages" if v.type == "tts" else "messages"
        return {
            "id": v.id,
            "href": f"{base}/verify/{v.id}",
            "recipient": int(v.recipient),
            "originator": v.originator,
            "type": v.type,
            "reference": v.reference,
            "messages": {"href": f"{base}/{messages}/{v.message_id}"},
            "status": v.status,
            "createdDatetime": _iso(v.created),
            "validUntilDatetime": _iso(v.valid_until),
        }

    async def create(self, request: Request) -> Response:
        try:
            params = await _read_params(request)
            recipient = _recipient(params)
            kind = _text(params, "type", "sms")
            if kind not in TYPES:
                raise _invalid("type", f"type must be one of {', '.join(TYPES)}")
            template = _text(params, "template", "Your code is: %token") or ""
            originator = _text(params, "originator", None)
            reference = _text(params, "reference", None)
            for spoken in ("language", "voice"):  # only used by a real text-to-speech call
                _text(params, spoken, None)
            timeout = _integer(params, "timeout", 30, 1, MAX_TIMEOUT)
            token_length = _integer(params, "tokenLength", 6, 6, 10)
            max_attempts = _integer(params, "maxAttempts", 1, 1, 10)
        except _Invalid as invalid:
            return invalid.response

        if recipient == TRIGGER_HANG:
            await anyio.sleep(self.state.hang_seconds)
        if recipient in (TRIGGER_SERVER_ERROR, TRIGGER_HANG):
            return _error(500, 99, "Internal error")

        token = "".join(secrets.choice("0123456789") for _ in range(token_length))
        created = self.state.now().replace(microsecond=0)
        verification = _Verification(
            id=secrets.token_hex(16),
            message_id=secrets.token_hex(16),
            recipient=recipient,
            type=kind,
            originator=originator,
            reference=reference,
            token=token,
            body=template.replace("%token", token),
            created=created,
            valid_until=created + timedelta(seconds=timeout),
            max_attempts=max_attempts,
            status="failed" if recipient == TRIGGER_CALL_FAILS else "sent",
        )
        self.state.add(verification)
        return JSONResponse(self._object(request, verification), status_code=201)

    async def show(self, request: Request) -> Response:
        verification = self.state.get(request.path_params["id"])
        if verification is None:
            return _error(404, 20, "verify object not found")
        token = request.query_params.get("token")
        if token:
            if verification.status == "expired":
                return _error(422, 10, "The token has expired.", "token")
            if verification.status != "sent":
                return _error(422, 10, "The token has already been processed.", "token")
            if not secrets.compare_digest(token.encode(), verification.token.encode()):
                verification.attempts += 1
                if verification.attempts >= verification.max_attempts:
                    verification.status = "failed"
                return _error(422, 10, "The token is invalid.", "token")
            verification.status = "verified"
        return JSONResponse(self._object(request, verification))

    async def delete(self, request: Request) -> Response:
        verification = self.state.get(request.path_params["id"])
        if verification is None:
            return _error(404, 20, "verify object not found")
        verification.status = "deleted"
        return Response(status_code=204)

    async def list_calls(self, request: Request) -> Response:
        return JSONResponse(self.state.calls())

    async def page(self, request: Request) -> Response:
        rows = "".join(
            "<tr><td>+{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n".format(
                *(html.escape(call[key]) for key in ("recipient", "body", "createdDatetime", "status"))
            )
            for call in self.state.calls()
        )
        return HTMLResponse(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<title>voice2fa sandbox: calls</title></head><body>\n"
            "<h1>Calls placed by the sandbox</h1>\n"
            "<p>Newest first. Reload to see new calls. JSON: <a href=\"calls\">calls</a></p>\n"
            "<table><thead><tr><th>Recipient</th><th>Spoken text</th><th>Time (UTC)</th>"
            f"<th>Status</th></tr></thead><tbody>\n{rows}</tbody></table>\n</body></html>\n"
        )


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = 98 if exc.status_code == 404 else 21
    response = _error(exc.status_code, code, exc.detail)
    response.headers.update(exc.headers or {})
    return response


def create_sandbox_app(state: SandboxState | None = None) -> Starlette:
    """The whole sandbox: the Verify API, the calls as JSON and as a page."""
    state = state or SandboxState()
    api = _SandboxApi(state)
    routes: list[BaseRoute] = [
        Route("/verify", _require_key(api.create), methods=["POST"]),
        Route("/verify/{id}", _require_key(api.show), methods=["GET"]),
        Route("/verify/{id}", _require_key(api.delete), methods=["DELETE"]),
        Route("/_sandbox/calls", api.list_calls, methods=["GET"]),
        Route("/_sandbox/", api.page, methods=["GET"]),
    ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: _http_error})
    app.state.sandbox = state
    return app
