"""What a person is shown of a verification: its code form, its result, and the refusals that show them.

Shared by every verb of the flow (webapp.flow), so that none of them imports another.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from webapp.errors import Refusal
from webapp.models import Verification
from webapp.outcomes import Outcome
from webapp.phone import format_international
from webapp.progress import Pending, Verified
from webapp.provider import CallOptions
from webapp.waits import seconds_until


class Shown:
    """Builds the Pending and Verified a flow returns, and the refusals that carry them."""

    def __init__(self, options: CallOptions, resend_cooldown: int, clock: Callable[[], datetime]) -> None:
        self._options = options
        self._resend_cooldown = resend_cooldown
        self._clock = clock

    def meanwhile(self, kind: str, verification: Verification, ref: str | None) -> Refusal | None:
        """What a request answers when its verification ended verified, or (a check) moved off call `ref`; else None.

        The one place for "verified meanwhile": a check of it is a replay (no fresh proof; the result
        is shown), a start's or resend's is already_verified. A check also finds its code superseded
        when another request placed a new call after it read the verification.
        """
        if verification.status == "verified":
            return self.replayed(verification) if kind == "check" else Refusal(Outcome.ALREADY_VERIFIED)
        if kind == "check" and verification.provider_ref != ref:
            return self.superseded(verification)
        return None

    def superseded(self, verification: Verification) -> Refusal:
        return Refusal(Outcome.SUPERSEDED, field="code", pending=self.pending(verification))

    def replayed(self, verification: Verification) -> Refusal:
        return Refusal(Outcome.REPLAYED, verified=self.verified(verification))

    def closed(self, verification: Verification, message: str | None = None) -> Refusal:
        return Refusal(Outcome.CLOSED, message, pending=self.pending(verification))

    def resend_wait(self, verification: Verification, now: datetime) -> int:
        ready = verification.last_call_at + timedelta(seconds=self._resend_cooldown)
        return seconds_until(ready, now, at_least=0)

    def pending(self, verification: Verification) -> Pending:
        now = self._clock()
        return Pending(
            id=verification.id,
            number=verification.number,
            international=format_international(verification.number),
            status=verification.status,
            attempts_left=max(0, self._options.max_attempts - verification.code_attempts),
            code_length=self._options.token_length,
            expires_at=verification.expires_at,
            resend_in=self.resend_wait(verification, now),
            call=verification.calls,
            verified_at=verification.verified_at,
            api_client=verification.api_client_id,
            ip=verification.ip,
        )

    def verified(self, verification: Verification) -> Verified:
        # verified_at is what the hand-off will trust: always the database's, never "now".
        assert verification.verified_at is not None, "a verified verification has its verified_at"
        return Verified(
            id=verification.id,
            number=verification.number,
            international=format_international(verification.number),
            verified_at=verification.verified_at,
        )
