"""The errors of voice2fa, in one hierarchy.

    Voice2faError
     ├── ProviderError                 the Verify provider did not do what we asked
     │    ├── ProviderUnavailable      a timeout, an answer cut off or malformed, a 5xx
     │    │    │                       without the provider's error body: the call may
     │    │    │                       or may not have been placed
     │    │    └── ProviderRefused     connection refused, a 429 for the whole account, a
     │    │                            5xx with the provider's own error body: proof that
     │    │                            nothing was done (the next provider may be tried)
     │    ├── ProviderUnauthorized     401 (Twilio 20003) or 403: the credentials
     │    │                            are wrong or the account is closed (a configuration error)
     │    └── ProviderRejected         a 4xx with the provider's error body
     │         ├── InvalidToken        MessageBird "The token is invalid."; Twilio: a check
     │         │                       answered "pending"
     │         ├── TokenExpired        "The token has expired."
     │         ├── TokenProcessed      "The token has already been processed."
     │         │    └── AttemptsExhausted  Twilio 60202: every check of this verification used
     │         ├── NotFound            404 (Twilio 20404): no such verification (or, at
     │         │                       Twilio, one that was approved or expired)
     │         ├── RecipientLimited    Twilio 60203 / 60212: no more calls to this number
     │         │                       for now (not an outage of the provider)
     │         └── InvalidParameter    any other 4xx (bad recipient, tokenLength, Twilio 60200, ...)
     └── Refusal                       the flow said no to the person: an outcome
                                       for the attempts log, a message, a status

`ProviderRefused` is apart from the rest of `ProviderUnavailable` because
failover (`webapp.provider.failover`) may try the next provider only when an
answer proves that no call was placed: after a timeout the call may be ringing.
`ProviderUnauthorized` proves it too.

`AttemptsExhausted` is a `TokenProcessed` because the flow treats both alike
(the verification can no longer be checked; ask how it ended). `RecipientLimited`
is apart from `ProviderUnavailable` because it says something about one number,
not about the provider: it must never count against the provider's health.

Provider errors never reach a template: the flow turns them into a Refusal
with a message fit for the person, and routes map every Refusal to a response
in one place (`webapp.routes`).
"""

from __future__ import annotations

from webapp.outcomes import Outcome


class Voice2faError(Exception):
    """Base of every error voice2fa raises on purpose."""


class ProviderError(Voice2faError):
    """The Verify provider did not do what was asked."""


class ProviderUnavailable(ProviderError):
    """The provider could not be reached, timed out or answered nonsense."""


class ProviderRefused(ProviderUnavailable):
    """The provider could not do it, and its answer proves nothing was done."""


class ProviderUnauthorized(ProviderError):
    """The provider refused our access key: a configuration error."""


class ProviderRejected(ProviderError):
    """The provider answered a 4xx with its error body."""

    def __init__(
        self,
        description: str,
        *,
        status_code: int,
        code: int | None = None,
        parameter: str | None = None,
    ) -> None:
        super().__init__(description)
        self.description = description
        self.status_code = status_code
        self.code = code
        self.parameter = parameter


class InvalidToken(ProviderRejected):
    """The token does not match."""


class TokenExpired(ProviderRejected):
    """The verification's validity ran out."""


class TokenProcessed(ProviderRejected):
    """The verification was already verified or failed."""


class AttemptsExhausted(TokenProcessed):
    """Every check the verification allowed was used (Twilio 60202)."""


class NotFound(ProviderRejected):
    """The provider knows no verification with that id."""


class RecipientLimited(ProviderRejected):
    """The provider refuses more calls to this number for now (Twilio 60203, 60212)."""


class InvalidParameter(ProviderRejected):
    """A request parameter was refused."""


class Refusal(Voice2faError):
    """The flow refused a request; everything a response and a log row need."""

    #: which form the person sees again: "phone" or "code"
    step: str = "phone"
    status_code: int = 422

    def __init__(
        self,
        outcome: Outcome,
        message: str,
        *,
        step: str | None = None,
        status_code: int | None = None,
        retry_after: int | None = None,
        field: str | None = None,
        pending: object | None = None,
        verified: object | None = None,
    ) -> None:
        super().__init__(message)
        self.outcome = outcome
        self.message = message
        if step is not None:
            self.step = step
        if status_code is not None:
            self.status_code = status_code
        self.retry_after = retry_after
        self.field = field
        #: the verification still in progress, for re-rendering the code form
        self.pending = pending
        #: the finished verification, for the result page (step "result")
        self.verified = verified
