"""The sandbox's MessageBird Verify REST API.

Same paths as https://rest.messagebird.com, same `Authorization: AccessKey …`
header (any non-empty key passes), same verify object and errors envelope
`{"errors": [{"code", "description", "parameter"}]}`.

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
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from webapp.provider.sandbox.state import (
    TRIGGER_CALL_FAILS,
    TRIGGER_HANG,
    TRIGGER_MESSAGEBIRD_DOWN,
    TRIGGER_SERVER_ERROR,
    Endpoint,
    SandboxState,
    SandboxVerification,
    cut_off,
    unless_out,
)

TYPES = ("sms", "flash", "tts", "email")
#: MessageBird's upper bound for `timeout` (three days); also keeps the date maths finite.
MAX_TIMEOUT = 259_200


@dataclass(slots=True, kw_only=True)
class MessageBirdVerification(SandboxVerification):
    """A verify object, as MessageBird keeps it."""

    api = "messagebird"
    waiting = frozenset({"sent"})

    message_id: str
    originator: str | None
    reference: str | None


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def error(status_code: int, code: int, description: str, parameter: str | None = None) -> JSONResponse:
    """MessageBird's errors envelope."""
    body = {"errors": [{"code": code, "description": description, "parameter": parameter}]}
    return JSONResponse(body, status_code=status_code)


class _Invalid(Exception):
    def __init__(self, response: JSONResponse) -> None:
        self.response = response


def _invalid(parameter: str, description: str, code: int = 10) -> _Invalid:
    return _Invalid(error(422, code, description, parameter))


def _require_key(endpoint: Endpoint) -> Endpoint:
    async def guarded(request: Request) -> Response:
        scheme, _, key = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "accesskey" or not key.strip():
            return error(401, 2, "Request not allowed (incorrect access_key)", "access_key")
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
        raise _Invalid(error(400, 21, "Request body is not valid JSON")) from None
    if not isinstance(data, dict):
        raise _Invalid(error(400, 21, "Request body must be a JSON object"))
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


class _MessageBirdApi:
    """The endpoints, over one SandboxState."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state

    def _object(self, request: Request, v: MessageBirdVerification) -> dict[str, Any]:
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
            return error(500, 99, "Internal error")
        if recipient == TRIGGER_MESSAGEBIRD_DOWN:
            return error(503, 99, "Service unavailable")

        token = "".join(secrets.choice("0123456789") for _ in range(token_length))
        created = self.state.now().replace(microsecond=0)
        verification = MessageBirdVerification(
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
        response = JSONResponse(self._object(request, verification), status_code=201)
        return cut_off(response) if self.state.cut("messagebird") else response

    def _get(self, request: Request) -> MessageBirdVerification | None:
        verification = self.state.get(request.path_params["id"])
        return verification if isinstance(verification, MessageBirdVerification) else None

    async def show(self, request: Request) -> Response:
        verification = self._get(request)
        if verification is None:
            return error(404, 20, "verify object not found")
        token = request.query_params.get("token")
        if token:
            if verification.status == "expired":
                return error(422, 10, "The token has expired.", "token")
            if verification.status != "sent":
                return error(422, 10, "The token has already been processed.", "token")
            if not secrets.compare_digest(token.encode(), verification.token.encode()):
                verification.attempts += 1
                if verification.attempts >= verification.max_attempts:
                    verification.status = "failed"
                return error(422, 10, "The token is invalid.", "token")
            verification.status = "verified"
        return JSONResponse(self._object(request, verification))

    async def delete(self, request: Request) -> Response:
        verification = self._get(request)
        if verification is None:
            return error(404, 20, "verify object not found")
        verification.status = "deleted"
        return Response(status_code=204)


#: What MessageBird answers in an outage (`SandboxState.outages`); it documents no code of its own for a 429.
OUTAGE_ERRORS = {
    401: (2, "Request not allowed (incorrect access_key)"),
    403: (2, "Request not allowed"),
    429: (99, "Too many requests"),
}


def _outage_error(status: int) -> Response:
    code, description = OUTAGE_ERRORS.get(status, (99, "Internal error"))
    return error(status, code, description, "access_key" if status == 401 else None)


def routes(state: SandboxState) -> list[BaseRoute]:
    """MessageBird's Verify paths over `state`."""
    api = _MessageBirdApi(state)

    def served(endpoint: Endpoint) -> Endpoint:
        return unless_out(state, "messagebird", _outage_error, _require_key(endpoint))

    return [
        Route("/verify", served(api.create), methods=["POST"]),
        Route("/verify/{id}", served(api.show), methods=["GET"]),
        Route("/verify/{id}", served(api.delete), methods=["DELETE"]),
    ]
