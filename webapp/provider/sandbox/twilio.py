"""The sandbox's Twilio Verify v2 REST API.

Same paths as https://verify.twilio.com/v2, HTTP Basic (any non-empty username
and password pass; without them 401 code 20003), form-encoded bodies, Twilio's
resources, dates as `2026-12-01T10:00:00Z`, and its error body
`{"code", "message", "more_info", "status"}`. Every SID of a Service's shape
(VA and 32 hex digits) is a Service of its own.

    POST /v2/Services/{ServiceSid}/Verifications        To (E.164), Channel (call | sms,
                                                        else 400 60200), Locale; 201 with
                                                        the verification, status "pending"
    POST /v2/Services/{ServiceSid}/VerificationCheck    VerificationSid or To, and Code
                                                        (4-10 digits); 200 "approved", or
                                                        "pending" for a wrong code
    GET  /v2/Services/{ServiceSid}/Verifications/{Sid}  the verification
    POST /v2/Services/{ServiceSid}/Verifications/{Sid}  Status=canceled (or approved)

As Twilio documents it: codes have 6 digits (the Service's CodeLength,
`SandboxState.twilio_code_length`) and live 10 minutes. While a number's
verification waits, another create calls again with the same SID and code, and
the sixth send is 429 60203 (cancelling or approving it, or its expiry, lets
the number start afresh). The fifth wrong code makes the verification
"max_attempts_reached"; checking it again is 429 60202, and the number gets no
new verification until it expires. Twilio forgets a verification once it is
approved or expired: every path answers it 404 code 20404, as for a SID it
never made. A canceled one can still be fetched. The resources and the error
body are `webapp.provider.sandbox.twilio_resources`.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from datetime import timedelta

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from webapp.provider.sandbox.state import (
    TRIGGER_CALL_FAILS,
    TRIGGER_HANG,
    TRIGGER_SERVER_ERROR,
    TRIGGER_TWILIO_DOWN,
    Endpoint,
    SandboxState,
    cut_off,
    unless_out,
)
from webapp.provider.sandbox.twilio_resources import (
    TwilioVerification,
    check_resource,
    error,
    not_found,
    outage_error,
    verification_resource,
)

LIFETIME = timedelta(minutes=10)
MAX_SENDS = 5
MAX_CHECKS = 5
CHANNELS = ("call", "sms")
#: The account every answer names when the username is an API key rather than an Account SID.
ACCOUNT_SID = "AC" + "0" * 32

_SERVICE = re.compile(r"VA[0-9a-fA-F]{32}")
_ACCOUNT = re.compile(r"AC[0-9a-fA-F]{32}")
_E164 = re.compile(r"\+[1-9][0-9]{1,14}")
_CODE = re.compile(r"[0-9]{4,10}")
_LOCALE = re.compile(r"[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})?")


def _credentials(request: Request) -> tuple[str, str] | None:
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        username, _, password = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (username, password) if username and password else None


def _require_basic(endpoint: Endpoint) -> Endpoint:
    async def guarded(request: Request) -> Response:
        credentials = _credentials(request)
        if credentials is None:
            response = error(401, 20003, "Authenticate")
            response.headers["WWW-Authenticate"] = 'Basic realm="Twilio API"'
            return response
        if not _SERVICE.fullmatch(request.path_params["service"]):
            return not_found(request)
        request.state.account_sid = credentials[0] if _ACCOUNT.fullmatch(credentials[0]) else ACCOUNT_SID
        return await endpoint(request)

    return guarded


async def _form(request: Request) -> dict[str, str]:
    # Twilio reads form-encoded bodies only; anything else has no parameters.
    async with request.form() as form:
        return {k: v for k, v in form.items() if isinstance(v, str)}


class _TwilioApi:
    """The endpoints, over one SandboxState."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state

    def _find(self, request: Request, sid: str) -> TwilioVerification | None:
        """The Service's verification `sid`, unless Twilio would have forgotten it."""
        verification = self.state.get(sid)
        if not isinstance(verification, TwilioVerification) or verification.gone:
            return None
        return verification if verification.service_sid == request.path_params["service"] else None

    def _waiting(self, request: Request, recipient: str) -> TwilioVerification | None:
        """The Service's verification of `recipient` that still waits for a code."""
        now = self.state.now()
        for verification in reversed(self.state.verifications.values()):
            if (
                isinstance(verification, TwilioVerification)
                and verification.recipient == recipient
                and verification.service_sid == request.path_params["service"]
                and verification.refresh(now).status in verification.waiting
            ):
                return verification
        return None

    async def create(self, request: Request) -> Response:
        form = await _form(request)
        to, channel, locale = form.get("To", ""), form.get("Channel", ""), form.get("Locale") or None
        if not _E164.fullmatch(to):
            return error(400, 60200, "Invalid parameter: To")
        if channel not in CHANNELS:
            return error(400, 60200, "Invalid parameter: Channel")
        if locale is not None and not _LOCALE.fullmatch(locale):
            return error(400, 60200, "Invalid parameter: Locale")
        recipient = to.removeprefix("+")
        if recipient == TRIGGER_HANG:
            await anyio.sleep(self.state.hang_seconds)
        if recipient in (TRIGGER_SERVER_ERROR, TRIGGER_HANG):
            return error(500, 20500, "An internal server error has occurred")
        if recipient == TRIGGER_TWILIO_DOWN:
            return error(503, 20503, "Service Unavailable")

        now = self.state.now().replace(microsecond=0)
        current = self._waiting(request, recipient)
        if current is not None:
            if current.status == "max_attempts_reached":
                return error(429, 60202, "Max check attempts reached")
            if len(current.calls) >= MAX_SENDS:
                return error(429, 60203, "Max send attempts reached")
            # Within its lifetime Twilio calls again with the same verification and code.
            current.channel, current.updated = channel, now
            current.attempt_sids.append("VL" + secrets.token_hex(16))
            self.state.call(current)
            return JSONResponse(verification_resource(request, current), status_code=201)

        token = "".join(secrets.choice("0123456789") for _ in range(self.state.twilio_code_length))
        verification = TwilioVerification(
            id="VE" + secrets.token_hex(16),
            recipient=recipient,
            type="tts" if channel == "call" else channel,
            token=token,
            body=f"Your verification code is: {token}",
            created=now,
            valid_until=now + LIFETIME,
            max_attempts=MAX_CHECKS,
            status="failed" if recipient == TRIGGER_CALL_FAILS else "pending",
            service_sid=request.path_params["service"],
            account_sid=request.state.account_sid,
            channel=channel,
            locale=locale,
            updated=now,
            attempt_sids=["VL" + secrets.token_hex(16)],
        )
        self.state.add(verification)
        response = JSONResponse(verification_resource(request, verification), status_code=201)
        return cut_off(response) if self.state.cut("twilio") else response

    async def check(self, request: Request) -> Response:
        form = await _form(request)
        code, sid, to = form.get("Code", ""), form.get("VerificationSid", ""), form.get("To", "")
        if not _CODE.fullmatch(code):
            return error(400, 60200, "Invalid parameter: Code")
        if sid:
            verification = self._find(request, sid)
        elif to:
            verification = self._waiting(request, to.removeprefix("+")) if _E164.fullmatch(to) else None
        else:
            return error(400, 60200, "Either a 'To' number or 'VerificationSid' must be specified")
        if verification is None or verification.status not in verification.waiting:
            return not_found(request)
        if verification.status == "max_attempts_reached":
            return error(429, 60202, "Max check attempts reached")
        verification.attempts += 1
        verification.updated = self.state.now().replace(microsecond=0)
        if secrets.compare_digest(code.encode(), verification.token.encode()):
            verification.status = "approved"
        elif verification.attempts >= verification.max_attempts:
            verification.status = "max_attempts_reached"
        return JSONResponse(check_resource(verification))

    async def fetch(self, request: Request) -> Response:
        verification = self._find(request, request.path_params["sid"])
        if verification is None:
            return not_found(request)
        return JSONResponse(verification_resource(request, verification))

    async def update(self, request: Request) -> Response:
        form = await _form(request)
        status = form.get("Status", "")
        if status not in ("canceled", "approved"):
            return error(400, 60200, "Invalid parameter: Status")
        verification = self._find(request, request.path_params["sid"])
        if verification is None or verification.status not in verification.waiting:
            return not_found(request)
        verification.status = status
        verification.updated = self.state.now().replace(microsecond=0)
        return JSONResponse(verification_resource(request, verification))


def routes(state: SandboxState) -> list[BaseRoute]:
    """Twilio Verify v2's paths over `state`."""
    api = _TwilioApi(state)

    def served(endpoint: Endpoint) -> Endpoint:
        return unless_out(state, "twilio", outage_error, _require_basic(endpoint))

    service = "/v2/Services/{service}"
    return [
        Route(f"{service}/Verifications", served(api.create), methods=["POST"]),
        Route(f"{service}/VerificationCheck", served(api.check), methods=["POST"]),
        Route(f"{service}/Verifications/{{sid}}", served(api.fetch), methods=["GET"]),
        Route(f"{service}/Verifications/{{sid}}", served(api.update), methods=["POST"]),
    ]
