"""RFC 9457 problem details, from one table keyed by outcome.

`OUTCOMES` says, for every outcome a refusal can carry (the flow's, the
guard's, and the API's own), its HTTP status and title; the problem's
`detail` is the refusal's message for the person, and `code` the outcome
itself. It is one table on purpose: when outcomes become one `StrEnum`, this
is the table that moves beside it. README's error table is checked against it
(tests/api/test_docs.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.responses import JSONResponse, Response

from webapp.api.schemas import FieldError, Problem
from webapp.errors import Refusal

MEDIA_TYPE = "application/problem+json"
#: Each problem's `type`: its line in the API's reference page (a relative URI, RFC 9457 §3.1.1).
TYPE_BASE = "/api/v1/docs#"


@dataclass(frozen=True, slots=True)
class Kind:
    status: int
    title: str


OUTCOMES: dict[str, Kind] = {
    # the number, and the policy on it
    "invalid_number": Kind(422, "Not a phone number we can call"),
    "blocked_denylist": Kind(422, "Refused by the deny list"),
    "blocked_country": Kind(422, "Country not served"),
    "blocked_number_type": Kind(422, "Number type not served"),
    # the limits
    "blocked_ip": Kind(429, "Too many requests from this address"),
    "blocked_number": Kind(429, "Too many calls to this number"),
    "blocked_pending": Kind(429, "A call to this number is in progress"),
    "blocked_global": Kind(429, "Too many calls overall"),
    "blocked_circuit": Kind(429, "Calls to this number are stopped"),
    "blocked_client": Kind(429, "Too many calls for this client"),
    "resend_too_soon": Kind(429, "Too soon for a new call"),
    "limiter_unavailable": Kind(503, "Limits can't be checked"),
    # the code, and the verification's state
    "invalid_code": Kind(422, "Not a code"),
    "wrong_code": Kind(422, "Wrong code"),
    "unverified": Kind(422, "Not verified"),
    "closed": Kind(422, "Verification closed"),
    "already_verified": Kind(409, "Already verified"),
    "replayed": Kind(409, "Already verified"),
    "superseded": Kind(409, "A newer call was placed"),
    "no_verification": Kind(409, "Verification ended"),
    "verification_busy": Kind(503, "Verification busy"),
    # the provider
    "provider_error": Kind(503, "The provider failed"),
    "call_failed": Kind(503, "The call failed"),
    # the API's own
    "unauthorized": Kind(401, "Client credentials needed"),
    "not_found": Kind(404, "Not found"),
    "method_not_allowed": Kind(405, "Method not allowed"),
    "invalid_body": Kind(400, "Body is not JSON"),
    "body_too_large": Kind(413, "Body too large"),
    "unsupported_media_type": Kind(415, "Body is not application/json"),
    "invalid_request": Kind(422, "Invalid request body"),
    "invalid_idempotency_key": Kind(400, "Invalid Idempotency-Key"),
    "idempotency_mismatch": Kind(422, "Idempotency-Key used with another body"),
    "idempotency_in_progress": Kind(409, "Idempotency-Key in use"),
    "storage_unavailable": Kind(503, "Database unavailable"),
}


class ApiRefusal(Refusal):
    """A refusal of the API's own (credentials, body, path, idempotency), before or beside the flow."""

    def __init__(self, outcome: str, message: str, *, retry_after: int | None = None,
                 errors: list[FieldError] | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(outcome, message, status_code=OUTCOMES[outcome].status, retry_after=retry_after)
        self.errors = errors
        self.headers = headers or {}


def kind_of(refusal: Refusal) -> Kind:
    """The table's status and title for a refusal's outcome."""
    # An outcome missing from the table is a bug (tests/api/test_docs.py looks for one), never a 500.
    return OUTCOMES.get(refusal.outcome) or Kind(refusal.status_code, "Refused")


def problem_body(refusal: Refusal) -> dict[str, object]:
    """The problem details of a refusal: status and title from the table, the message as detail."""
    kind = kind_of(refusal)
    return Problem(
        type=TYPE_BASE + refusal.outcome, title=kind.title, status=kind.status, detail=refusal.message,
        code=refusal.outcome, errors=getattr(refusal, "errors", None),
    ).model_dump(exclude_none=True)


def problem(refusal: Refusal) -> Response:
    """The problem details response for a refusal, with `Retry-After` when it has a wait."""
    body = problem_body(refusal)
    headers = {"Cache-Control": "no-store", **getattr(refusal, "headers", {})}
    if refusal.retry_after:
        headers["Retry-After"] = str(refusal.retry_after)
    return JSONResponse(body, status_code=kind_of(refusal).status, headers=headers, media_type=MEDIA_TYPE)
