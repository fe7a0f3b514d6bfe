"""Every outcome voice2fa knows, in one enumeration, and what each refusal tells, in one table.

An outcome is what happened to one request: the attempts log's `outcome`
column, the API's problem `code`, the operators' filters. `Outcome` is a
`StrEnum`, so a member is equal to its string: the database, the templates
and the CSV hold the same values as before there was an enumeration.

`REFUSALS` says, for every outcome a `Refusal` can carry, what the person is
told, which form they see, the HTTP status, and the JSON API's title. The page
(`webapp.page_replies.refused`) and the API's problem details (`webapp.api.problems`)
both read it, so a refusal is decided here and only rendered there.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Outcome(StrEnum):
    """What happened to a request; the members the attempts log holds come first, in the operators' order."""

    # a call, a code, a verification in progress
    SENT = "sent"
    VERIFIED = "verified"
    REUSED = "reused"
    ALREADY_VERIFIED = "already_verified"
    REPLAYED = "replayed"
    SUPERSEDED = "superseded"
    WRONG_CODE = "wrong_code"
    UNVERIFIED = "unverified"
    ATTEMPTS_EXHAUSTED = "attempts_exhausted"
    INVALID_CODE = "invalid_code"
    INVALID_NUMBER = "invalid_number"
    EXPIRED = "expired"
    CLOSED = "closed"
    NO_VERIFICATION = "no_verification"
    RESEND_TOO_SOON = "resend_too_soon"
    CANCELLED = "cancelled"
    # the guard
    BLOCKED_IP = "blocked_ip"
    BLOCKED_NUMBER = "blocked_number"
    BLOCKED_PENDING = "blocked_pending"
    BLOCKED_GLOBAL = "blocked_global"
    BLOCKED_COUNTRY = "blocked_country"
    BLOCKED_NUMBER_TYPE = "blocked_number_type"
    BLOCKED_DENYLIST = "blocked_denylist"
    BLOCKED_CIRCUIT = "blocked_circuit"
    # our side and the provider's
    PROVIDER_ERROR = "provider_error"
    PROVIDER_FAILOVER = "provider_failover"
    CALL_FAILED = "call_failed"
    LIMITER_UNAVAILABLE = "limiter_unavailable"
    VERIFICATION_BUSY = "verification_busy"
    # the OpenID Connect hand-off (webapp/oidc)
    HANDOFF_STARTED = "handoff_started"
    CODE_ISSUED = "code_issued"
    TOKEN_ISSUED = "token_issued"  # noqa: S105  # an outcome, not a secret
    HANDOFF_CANCELLED = "handoff_cancelled"
    OIDC_ERROR = "oidc_error"
    BLOCKED_CLIENT = "blocked_client"
    # the page's own: a form it can't read (webapp.forms.read_logged writes its row)
    BAD_REQUEST = "bad_request"
    FORM_TOO_LARGE = "form_too_large"
    FORM_NOT_URLENCODED = "form_not_urlencoded"
    # ---- not in the operators' filters (LOGGED ends above) ----
    # the JSON API's own
    UNAUTHORIZED = "unauthorized"
    IDEMPOTENT_REPLAY = "idempotent_replay"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    INVALID_BODY = "invalid_body"
    BODY_TOO_LARGE = "body_too_large"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    INVALID_REQUEST = "invalid_request"
    INVALID_IDEMPOTENCY_KEY = "invalid_idempotency_key"
    IDEMPOTENCY_MISMATCH = "idempotency_mismatch"
    IDEMPOTENCY_IN_PROGRESS = "idempotency_in_progress"
    STORAGE_UNAVAILABLE = "storage_unavailable"
    # the flow's, for the person (its attempts row says provider_error)
    RECIPIENT_REFUSED = "recipient_refused"


_MEMBERS = tuple(Outcome)
#: The outcomes the operators filter the attempts log by, in the order their filters list them.
LOGGED: tuple[Outcome, ...] = _MEMBERS[: _MEMBERS.index(Outcome.FORM_NOT_URLENCODED) + 1]
#: The hand-off's own decisions: a site's request, its code, its tokens.
HANDOFF: tuple[Outcome, ...] = (
    Outcome.HANDOFF_STARTED,
    Outcome.CODE_ISSUED,
    Outcome.TOKEN_ISSUED,
    Outcome.HANDOFF_CANCELLED,
    Outcome.OIDC_ERROR,
)


class Form(StrEnum):
    """Which form a refused person sees."""

    #: where they were: the code form when the refusal carries the verification in progress, else the phone form
    CURRENT = "current"
    #: the phone form, the session's verification forgotten: it is over
    PHONE = "phone"
    #: the result of the verification, which ended verified (the session's forgotten)
    RESULT = "result"


@dataclass(frozen=True, slots=True)
class Told:
    """What one refusal means to the person and to a client."""

    status: int
    #: the JSON API's problem title; None: the API never answers it (the page's own)
    title: str | None
    #: what the person is told ({wait}: the refusal's retry_after in words); None: the raise site says it
    message: str | None = None
    form: Form = Form.CURRENT


GONE = "That verification has ended. Enter your number to get a new call."
CALL_FAILED = "We couldn't place the call. Please try again later."
LIMITER_DOWN = "We can't place calls right now. Please try again in a few minutes."
BUSY = "This verification is busy in another window. Please try again in a moment."
STORAGE_DOWN = "We're having trouble on our side. Please try again in a minute."

#: Every outcome a refusal can carry; the API's problem `code`s are those with a title, in this order.
REFUSALS: dict[Outcome, Told] = {
    # the number, and the policy on it
    Outcome.INVALID_NUMBER: Told(422, "Not a phone number we can call"),  # the parser says what is wrong
    Outcome.BLOCKED_DENYLIST: Told(422, "Refused by the deny list", "We can't place this call."),
    Outcome.BLOCKED_COUNTRY: Told(422, "Country not served", "We can't call numbers in this country."),
    Outcome.BLOCKED_NUMBER_TYPE: Told(
        422,
        "Number type not served",
        "We can't call this kind of number. Please use a mobile or landline number.",
    ),
    # the limits
    Outcome.BLOCKED_IP: Told(429, "Too many requests from this address"),  # each door names its own limit
    Outcome.BLOCKED_NUMBER: Told(
        429, "Too many calls to this number", "Too many calls to this number. Try again in {wait}."
    ),
    Outcome.BLOCKED_PENDING: Told(
        429,
        "A call to this number is in progress",
        "A call to this number is already in progress. Try again in {wait}.",
    ),
    Outcome.BLOCKED_GLOBAL: Told(
        429,
        "Too many calls overall",
        "We're placing too many calls right now. Please try again in a few minutes.",
    ),
    Outcome.BLOCKED_CIRCUIT: Told(429, "Calls to this number are stopped"),  # the country, or the number's range
    Outcome.BLOCKED_CLIENT: Told(
        429, "Too many calls for this client", "Too many calls for this client. Try again in {wait}."
    ),
    Outcome.RESEND_TOO_SOON: Told(429, "Too soon for a new call", "You can ask for a new call in {wait}."),
    Outcome.LIMITER_UNAVAILABLE: Told(503, "Limits can't be checked", LIMITER_DOWN),
    # the code, and the verification's state
    Outcome.INVALID_CODE: Told(422, "Not a code"),  # the parser says what is wrong
    Outcome.WRONG_CODE: Told(422, "Wrong code"),  # with the attempts left
    Outcome.UNVERIFIED: Told(422, "Not verified"),  # as a wrong code
    Outcome.CLOSED: Told(422, "Verification closed", "This code can no longer be used. Ask for a new call."),
    Outcome.ALREADY_VERIFIED: Told(409, "Already verified", "This number is already verified.", Form.PHONE),
    Outcome.REPLAYED: Told(
        409,
        "Already verified",
        "This number is already verified; a code can't be used for it again.",
        Form.RESULT,
    ),
    Outcome.SUPERSEDED: Told(
        409,
        "A newer call was placed",
        "A new call was placed since. Type the code from the newest call.",
    ),
    Outcome.NO_VERIFICATION: Told(409, "Verification ended", GONE, Form.PHONE),
    Outcome.VERIFICATION_BUSY: Told(503, "Verification busy", BUSY),
    # the provider
    Outcome.PROVIDER_ERROR: Told(503, "The provider failed", CALL_FAILED),
    Outcome.RECIPIENT_REFUSED: Told(
        422,
        "The provider refused the number",
        "We can't call this number. Check it and try again.",
    ),
    Outcome.CALL_FAILED: Told(503, "The call failed", CALL_FAILED),
    # the API's own (each raise site says what is wrong)
    Outcome.UNAUTHORIZED: Told(401, "Client credentials needed"),
    Outcome.NOT_FOUND: Told(404, "Not found"),
    Outcome.METHOD_NOT_ALLOWED: Told(405, "Method not allowed"),
    Outcome.INVALID_BODY: Told(400, "Body is not JSON"),
    Outcome.BODY_TOO_LARGE: Told(413, "Body too large"),
    Outcome.UNSUPPORTED_MEDIA_TYPE: Told(415, "Body is not application/json"),
    Outcome.INVALID_REQUEST: Told(422, "Invalid request body"),
    Outcome.INVALID_IDEMPOTENCY_KEY: Told(400, "Invalid Idempotency-Key"),
    Outcome.IDEMPOTENCY_MISMATCH: Told(
        422,
        "Idempotency-Key used with another body",
        "This Idempotency-Key was used with another body. Use a new key for a new request.",
    ),
    Outcome.IDEMPOTENCY_IN_PROGRESS: Told(
        409,
        "Idempotency-Key in use",
        "A request with this Idempotency-Key is still being answered. Try again in a moment.",
    ),
    Outcome.STORAGE_UNAVAILABLE: Told(503, "Database unavailable", STORAGE_DOWN),
    # the page's own: a form it can't read (the raise site says how)
    Outcome.BAD_REQUEST: Told(400, None),
    Outcome.FORM_TOO_LARGE: Told(413, None),
    Outcome.FORM_NOT_URLENCODED: Told(415, None),
}
#: The API's problem codes: the refusals it can answer, with their status and title.
API_OUTCOMES: dict[Outcome, Told] = {outcome: told for outcome, told in REFUSALS.items() if told.title is not None}
