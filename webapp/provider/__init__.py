"""The Verify provider: a small interface and what it returns.

Two implementations speak it: `webapp.provider.messagebird.MessageBird`
(MessageBird's classic Verify API) and `webapp.provider.twilio.Twilio`
(Twilio Verify v2). `webapp.provider.sandbox` is a local server speaking both
REST APIs.

The interface has its own words, which each client translates: the channel
`CALL` (a voice call that reads the code; MessageBird's `type=tts`, Twilio's
`Channel=call`), and the statuses below (Twilio's `pending` is "sent", its
`approved` "verified", its `canceled` "deleted", its `max_attempts_reached`
"failed").
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

#: The channel of a voice call that reads the code.
CALL = "call"

#: The providers voice2fa speaks, by the names the PROVIDERS setting and the attempts log use.
MESSAGEBIRD = "messagebird"
TWILIO = "twilio"
NAMES = (MESSAGEBIRD, TWILIO)


@dataclass(frozen=True, slots=True)
class CallOptions:
    """How the voice call sounds and how long its code lives."""

    template: str = "Your account security code is %token."
    language: str = "en-gb"
    voice: str = "female"
    token_length: int = 6
    timeout: int = 300
    max_attempts: int = 5
    originator: str | None = None


@dataclass(frozen=True, slots=True)
class ProviderVerification:
    """A verification as the provider sees it."""

    id: str
    #: the number as the provider echoes it (MessageBird: digits without "+"; Twilio: E.164)
    recipient: str
    status: str  # sent | verified | expired | failed | deleted
    created: datetime | None
    #: None when the provider does not say (Twilio: its Verify Service decides)
    valid_until: datetime | None


class Provider(Protocol):
    async def create(self, recipient: str, channel: str, options: CallOptions) -> ProviderVerification:
        """Place a call (channel `CALL`) that reads a fresh code to `recipient` (E.164)."""

    async def check(self, ref: str, code: str) -> ProviderVerification:
        """Check `code` against the verification `ref`; only status "verified" is success."""

    async def fetch(self, ref: str) -> ProviderVerification:
        """The verification `ref` as it stands (its status), without checking a code."""

    async def cancel(self, ref: str) -> None:
        """Cancel the verification `ref`."""


def parse_datetime(value: object) -> datetime | None:
    """An ISO 8601 time from a provider's answer, aware (UTC if it names no zone); None if absent."""
    if not isinstance(value, str) or not value:
        return None
    moment = datetime.fromisoformat(value)  # reads a "Z" suffix since Python 3.11
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
