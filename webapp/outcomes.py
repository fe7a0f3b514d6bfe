"""Every outcome voice2fa knows, in one enumeration.

An outcome is what happened to one request: the attempts log's `outcome`
column, the API's problem `code`, the operators' filters. `Outcome` is a
`StrEnum`, so a member is equal to its string: the database, the templates
and the CSV hold the same values as before there was an enumeration.
"""

from __future__ import annotations

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
    # the page's own: a form it can't read
    BAD_REQUEST = "bad_request"


_MEMBERS = tuple(Outcome)
#: The outcomes the operators filter the attempts log by, in the order their filters list them.
LOGGED: tuple[Outcome, ...] = _MEMBERS[: _MEMBERS.index(Outcome.BLOCKED_CLIENT) + 1]
#: The hand-off's own decisions: a site's request, its code, its tokens.
HANDOFF: tuple[Outcome, ...] = (
    Outcome.HANDOFF_STARTED, Outcome.CODE_ISSUED, Outcome.TOKEN_ISSUED, Outcome.HANDOFF_CANCELLED, Outcome.OIDC_ERROR,
)
