"""The Verify provider: a small interface and what it returns.

The one real implementation is `webapp.provider.messagebird.MessageBird`;
`webapp.provider.sandbox` is a local server speaking the same REST API.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


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
    recipient: str
    status: str  # sent | verified | expired | failed | deleted
    created: datetime | None
    valid_until: datetime | None


class Provider(Protocol):
    async def create(self, recipient: str, channel: str, options: CallOptions) -> ProviderVerification:
        """Place a call (channel "tts") that reads a fresh code to `recipient` (E.164)."""

    async def check(self, ref: str, code: str) -> ProviderVerification:
        """Check `code` against the verification `ref`."""

    async def fetch(self, ref: str) -> ProviderVerification:
        """The verification `ref` as it stands (its status), without checking a code."""

    async def cancel(self, ref: str) -> None:
        """Delete the verification `ref`."""
