"""RFC 9457 problem details, from the one outcome table (`webapp.outcomes.REFUSALS`).

The table says, for every outcome a refusal can carry (the flow's, the
guard's, and the API's own), its HTTP status and title; the problem's
`detail` is the refusal's message for the person, and `code` the outcome
itself. The page renders the same table (`webapp.page_replies.refused`): nothing is
decided here. README's error table is checked against it (tests/api/test_docs.py).
"""

from __future__ import annotations

from starlette.responses import JSONResponse, Response

from webapp.api.schemas import FieldError, Problem
from webapp.errors import Refusal
from webapp.outcomes import Outcome

MEDIA_TYPE = "application/problem+json"
#: Each problem's `type`: its line in the API's reference page (a relative URI, RFC 9457 §3.1.1).
TYPE_BASE = "/api/v1/docs#"


class ApiRefusal(Refusal):
    """A refusal of the API's own (credentials, body, path, idempotency), before or beside the flow."""

    def __init__(
        self,
        outcome: Outcome,
        message: str | None = None,
        *,
        retry_after: int | None = None,
        errors: list[FieldError] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(outcome, message, retry_after=retry_after)
        self.errors = errors
        self.headers = headers or {}


def problem_body(refusal: Refusal) -> dict[str, object]:
    """The problem details of a refusal: status and title from the table, the message as detail."""
    told = refusal.told
    return Problem(
        type=TYPE_BASE + refusal.outcome,
        title=told.title or "Refused",
        status=told.status,
        detail=refusal.message,
        code=refusal.outcome,
        errors=getattr(refusal, "errors", None),
    ).model_dump(exclude_none=True)


def problem(refusal: Refusal) -> Response:
    """The problem details response for a refusal, with `Retry-After` when it has a wait."""
    body = problem_body(refusal)
    headers = {"Cache-Control": "no-store", **getattr(refusal, "headers", {})}
    if refusal.retry_after:
        headers["Retry-After"] = str(refusal.retry_after)
    return JSONResponse(body, status_code=refusal.status_code, headers=headers, media_type=MEDIA_TYPE)
