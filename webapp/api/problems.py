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
from webapp.outcomes import Outcome

MEDIA_TYPE = "application/problem+json"
#: Each problem's `type`: its line in the API's reference page (a relative URI, RFC 9457 §3.1.1).
TYPE_BASE = "/api/v1/docs#"


@dataclass(frozen=True, slots=True)
class Kind:
    status: int
    title: str


OUTCOMES: dict[Outcome, Kind] = {
    # the number, and the policy on it
    Outcome.INVALID_NUMBER: Kind(422, "Not a phone number we can call"),
    Outcome.BLOCKED_DENYLIST: Kind(422, "Refused by the deny list"),
    Outcome.BLOCKED_COUNTRY: Kind(422, "Country not served"),
    Outcome.BLOCKED_NUMBER_TYPE: Kind(422, "Number type not served"),
    # the limits
    Outcome.BLOCKED_IP: Kind(429, "Too many requests from this address"),
    Outcome.BLOCKED_NUMBER: Kind(429, "Too many calls to this number"),
    Outcome.BLOCKED_PENDING: Kind(429, "A call to this number is in progress"),
    Outcome.BLOCKED_GLOBAL: Kind(429, "Too many calls overall"),
    Outcome.BLOCKED_CIRCUIT: Kind(429, "Calls to this number are stopped"),
    Outcome.BLOCKED_CLIENT: Kind(429, "Too many calls for this client"),
    Outcome.RESEND_TOO_SOON: Kind(429, "Too soon for a new call"),
    Outcome.LIMITER_UNAVAILABLE: Kind(503, "Limits can't be checked"),
    # the code, and the verification's state
    Outcome.INVALID_CODE: Kind(422, "Not a code"),
    Outcome.WRONG_CODE: Kind(422, "Wrong code"),
    Outcome.UNVERIFIED: Kind(422, "Not verified"),
    Outcome.CLOSED: Kind(422, "Verification closed"),
    Outcome.ALREADY_VERIFIED: Kind(409, "Already verified"),
    Outcome.REPLAYED: Kind(409, "Already verified"),
    Outcome.SUPERSEDED: Kind(409, "A newer call was placed"),
    Outcome.NO_VERIFICATION: Kind(409, "Verification ended"),
    Outcome.VERIFICATION_BUSY: Kind(503, "Verification busy"),
    # the provider
    Outcome.PROVIDER_ERROR: Kind(503, "The provider failed"),
    Outcome.CALL_FAILED: Kind(503, "The call failed"),
    # the API's own
    Outcome.UNAUTHORIZED: Kind(401, "Client credentials needed"),
    Outcome.NOT_FOUND: Kind(404, "Not found"),
    Outcome.METHOD_NOT_ALLOWED: Kind(405, "Method not allowed"),
    Outcome.INVALID_BODY: Kind(400, "Body is not JSON"),
    Outcome.BODY_TOO_LARGE: Kind(413, "Body too large"),
    Outcome.UNSUPPORTED_MEDIA_TYPE: Kind(415, "Body is not application/json"),
    Outcome.INVALID_REQUEST: Kind(422, "Invalid request body"),
    Outcome.INVALID_IDEMPOTENCY_KEY: Kind(400, "Invalid Idempotency-Key"),
    Outcome.IDEMPOTENCY_MISMATCH: Kind(422, "Idempotency-Key used with another body"),
    Outcome.IDEMPOTENCY_IN_PROGRESS: Kind(409, "Idempotency-Key in use"),
    Outcome.STORAGE_UNAVAILABLE: Kind(503, "Database unavailable"),
}


class ApiRefusal(Refusal):
    """A refusal of the API's own (credentials, body, path, idempotency), before or beside the flow."""

    def __init__(self, outcome: Outcome, message: str, *, retry_after: int | None = None,
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
