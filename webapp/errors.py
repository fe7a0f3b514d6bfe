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
                                       (the table says its status and form), a message

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
in one place (`webapp.page_replies.refused`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, Self

from webapp.outcomes import REFUSALS, Outcome, Told
from webapp.waits import wait_text

if TYPE_CHECKING:
    from webapp.progress import Pending, Verified


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
    """The flow refused a request; everything a response and a log row need.

    What it tells the person by default, the form they see and the HTTP status
    are the outcome's (`webapp.outcomes.REFUSALS`), never the raise site's. A
    refusal is not changed once made: `showing` makes another.
    """

    def __init__(
        self,
        outcome: Outcome,
        message: str | None = None,
        *,
        retry_after: int | None = None,
        field: str | None = None,
        pending: Pending | None = None,
        verified: Verified | None = None,
    ) -> None:
        told = REFUSALS[outcome]
        if message is None:
            assert told.message is not None, f"a {outcome} refusal says what is wrong itself"
            message = told.message.format(wait=wait_text(retry_after or 0))
        super().__init__(message)
        self.outcome: Final = outcome
        self.message: Final = message
        self.retry_after: Final = retry_after
        self.field: Final = field
        #: the verification still in progress, for the code form
        self.pending: Final = pending
        #: the finished verification, for the result page
        self.verified: Final = verified

    def __setattr__(self, name: str, value: object) -> None:
        # Each attribute is set once, by __init__; dunders (a traceback, notes) are Python's.
        if name in self.__dict__:
            raise AttributeError(f"a refusal is not changed after it is made ({name})")
        super().__setattr__(name, value)

    @property
    def told(self) -> Told:
        """The outcome's line in the table: status, form, API title."""
        return REFUSALS[self.outcome]

    @property
    def status_code(self) -> int:
        """The HTTP status, from the table."""
        return REFUSALS[self.outcome].status

    def showing(self, pending: Pending | None) -> Self:
        """This refusal with the verification in progress for the code form: a new one; this one is unchanged."""
        shown = type(self).__new__(type(self))
        Exception.__init__(shown, *self.args)
        shown.__dict__.update(self.__dict__, pending=pending)
        return shown
