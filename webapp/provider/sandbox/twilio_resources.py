"""What the sandbox's Twilio Verify v2 API keeps and answers: the Verification and Twilio's JSON.

    TwilioVerification         the Verification resource, as Twilio keeps it (`SandboxState` holds it)
    check_resource(v)          the VerificationCheck resource a check answers
    verification_resource(…)   the Verification resource, with its send attempts and URL
    error(status, code, …)     Twilio's error body `{"code", "message", "more_info", "status"}`
    not_found(request)         404 code 20404, as Twilio names the resource
    outage_error(status)       what Twilio answers in an outage (`SandboxState.outages`)

Dates are as Twilio writes them, `2026-12-01T10:00:00Z`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from starlette.requests import Request
from starlette.responses import JSONResponse

from webapp.provider.sandbox.state import SandboxVerification


@dataclass(slots=True, kw_only=True)
class TwilioVerification(SandboxVerification):
    """A Verification resource, as Twilio keeps it."""

    api = "twilio"
    waiting = frozenset({"pending", "max_attempts_reached"})
    call_statuses: ClassVar[dict[str, str]] = {
        "pending": "sent",
        "approved": "verified",
        "canceled": "deleted",
        "max_attempts_reached": "failed",
    }

    service_sid: str
    account_sid: str
    channel: str
    locale: str | None
    updated: datetime
    attempt_sids: list[str] = field(default_factory=list)

    @property
    def gone(self) -> bool:
        """Twilio deletes a verification once it is approved or expired."""
        return self.status in ("approved", "expired")


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def check_resource(v: TwilioVerification) -> dict[str, Any]:
    """The VerificationCheck resource: the verification's fields a check answers."""
    return {
        "sid": v.id,
        "service_sid": v.service_sid,
        "account_sid": v.account_sid,
        "to": "+" + v.recipient,
        "channel": v.channel,
        "status": v.status,
        "valid": v.status == "approved",
        "amount": None,
        "payee": None,
        "date_created": _iso(v.created),
        "date_updated": _iso(v.updated),
        "sna_attempts_error_codes": [],
    }


def verification_resource(request: Request, v: TwilioVerification) -> dict[str, Any]:
    """The Verification resource."""
    resource = check_resource(v)
    del resource["sna_attempts_error_codes"]
    base = str(request.base_url).rstrip("/")
    return {
        **resource,
        "lookup": {},
        "send_code_attempts": [
            {"attempt_sid": sid, "channel": v.channel, "time": _iso(when)}
            for sid, (_, when) in zip(v.attempt_sids, v.calls, strict=True)
        ],
        "sna": None,
        "url": f"{base}/v2/Services/{v.service_sid}/Verifications/{v.id}",
    }


def error(status_code: int, code: int, message: str) -> JSONResponse:
    """Twilio's error body."""
    body = {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status_code,
    }
    return JSONResponse(body, status_code=status_code)


def not_found(request: Request) -> JSONResponse:
    """404 code 20404, naming the resource as Twilio does (without the version)."""
    return error(404, 20404, f"The requested resource {request.url.path.removeprefix('/v2')} was not found")


#: What Twilio answers in an outage (`SandboxState.outages`), by its documented error codes.
OUTAGE_ERRORS = {
    401: (20003, "Authenticate"),
    403: (20005, "Account is not active"),
    429: (20429, "Too Many Requests"),
    503: (20503, "Service Unavailable"),
}


def outage_error(status: int) -> JSONResponse:
    """Twilio's error body for an outage's `status`."""
    code, message = OUTAGE_ERRORS.get(status, (20500, "An internal server error has occurred"))
    return error(status, code, message)
