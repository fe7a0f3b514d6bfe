"""A new call for a verification in progress ("Call me again"): whether it may have one, and placing it.

The flow takes the verification's turn and loads it (webapp.flow); a resend
then waits out the cooldown, passes the guard like a start, reopens a
verification whose code ran out, cancels the call it replaces and places the
new one (webapp.calls). Every refusal writes its attempts row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from webapp.attempts import AttemptLog
from webapp.calls import Calls
from webapp.errors import Refusal
from webapp.guard import Guard
from webapp.models import Verification
from webapp.outcomes import Form, Outcome
from webapp.phone import number_from_e164
from webapp.progress import Pending
from webapp.shown import Shown
from webapp.verifications import Verifications


@dataclass(frozen=True)
class Resends:
    """The flow's new calls for a verification: its guard, its calls, and where the refusals are logged."""

    guard: Guard
    verifications: Verifications
    attempts: AttemptLog
    calls: Calls
    shown: Shown
    clock: Callable[[], datetime]
    #: the JSON API client whose ceiling the calls count against (None: the page)
    api_client: str | None = None

    async def again(self, verification: Verification, ip: str) -> Pending:
        """Place a new call for the verification (its turn taken); what the code form shows."""
        meanwhile = self.shown.meanwhile("resend", verification, verification.provider_ref)
        if meanwhile is not None:
            await self.attempts.write("resend", meanwhile.outcome, ip, verification=verification)
            raise meanwhile
        wait = self.shown.resend_wait(verification, self.clock())
        if wait > 0:
            await self.attempts.write("resend", Outcome.RESEND_TOO_SOON, ip, verification=verification)
            raise Refusal(Outcome.RESEND_TOO_SOON, retry_after=wait, pending=self.shown.pending(verification))
        number = number_from_e164(verification.number)
        # Past its expiry a pending verification no longer holds the number: reopen it like a closed one.
        was_live = verification.status == "pending" and self.clock() < verification.expires_at
        try:
            await self.guard.check_number(number)
            await self.guard.count_call(number, self.api_client)
            if not was_live:
                verification = await self.verifications.reopen(verification)
        except Refusal as refusal:
            await self.attempts.write("resend", refusal.outcome, ip, verification=verification)
            if refusal.told.form == Form.CURRENT:  # not over: the code form stays
                raise refusal.showing(self.shown.pending(verification)) from None
            raise
        if was_live and verification.provider_ref:
            await self.calls.cancel_quietly(verification.provider, verification.provider_ref)
        return await self.calls.place("resend", number, verification, ip)
