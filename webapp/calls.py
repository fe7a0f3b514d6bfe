"""Placing a call for a verification, and writing down the call the provider placed.

A start fails over between the providers (webapp.provider.failover); a resend
goes to the provider of the verification's call. A call that can't be placed
closes its verification; a placed call is written down, or kept by the outbox
while the database is away.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from webapp.attempts import AttemptLog
from webapp.errors import InvalidParameter, ProviderError, ProviderUnauthorized, Refusal
from webapp.logs import mask_number
from webapp.models import Attempt, Verification
from webapp.outbox import Outbox
from webapp.outcomes import Outcome
from webapp.phone import PhoneNumber
from webapp.progress import Pending
from webapp.provider import CALL, CallOptions, ProviderVerification
from webapp.provider.failover import Failure, Placed, Providers, Unplaced
from webapp.shown import Shown
from webapp.verifications import Verifications

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Calls:
    """The flow's calls: its providers, and where each call and its attempts rows are written."""

    providers: Providers
    verifications: Verifications
    attempts: AttemptLog
    outbox: Outbox
    shown: Shown
    options: CallOptions
    clock: Callable[[], datetime]

    async def place(self, kind: str, number: PhoneNumber, verification: Verification, ip: str) -> Pending:
        """Call `number` for the verification (`kind`: "start" or "resend"); what the code form shows."""
        placed = await self._create(number, ip, kind, verification)
        return await self._placed(kind, verification, placed, ip)

    async def _create(self, number: PhoneNumber, ip: str, kind: str, verification: Verification) -> Placed:
        """Ask the providers to call (webapp.provider.failover); on failure the verification is closed and the refusal logged.

        A start fails over; a resend goes to the provider of the verification's call.
        """

        async def failed_over(failure: Failure) -> None:
            log.warning("placing a call failed at %s, trying the next provider: %s", failure.provider, failure.error)
            await self.attempts.write(
                kind,
                Outcome.PROVIDER_FAILOVER,
                ip,
                verification=verification,
                provider=failure.provider,
                latency=failure.latency,
                reason=failure.reason,
            )

        only = verification.provider if kind == "resend" else None
        try:
            placed = await self.providers.create(number.e164, CALL, self.options, on_failover=failed_over, only=only)
        except Unplaced as unplaced:
            exc = unplaced.error
            if not isinstance(exc, ProviderUnauthorized):
                log.warning("placing a call failed at %s: %s", unplaced.provider or "no provider", exc)
            verification.provider = unplaced.provider or verification.provider
            await self._close(
                verification,
                "unplaced",
                ip,
                kind=kind,
                outcome=Outcome.PROVIDER_ERROR,
                latency=unplaced.latency,
                reason=unplaced.reason,
            )
            if isinstance(exc, InvalidParameter) and exc.parameter == "recipient":
                raise Refusal(Outcome.RECIPIENT_REFUSED, field="phone") from None
            raise self._call_failed(kind, Outcome.PROVIDER_ERROR, verification, unplaced.retry_after) from None
        created = placed.verification
        if created.status != "sent":
            log.warning(
                "the provider could not place the call to %s: status %s", mask_number(number.e164), created.status
            )
            verification.provider_ref, verification.provider = created.id, placed.provider
            await self._close(
                verification, "unplaced", ip, kind=kind, outcome=Outcome.CALL_FAILED, latency=placed.latency
            )
            raise self._call_failed(kind, Outcome.CALL_FAILED, verification)
        return placed

    async def _placed(self, kind: str, verification: Verification, placed: Placed, ip: str) -> Pending:
        """Write down the call the provider placed; if the database is away, the outbox keeps it."""
        now = self.clock()
        created, latency = placed.verification, placed.latency
        verification.provider_ref, verification.provider = created.id, placed.provider
        verification.expires_at = self._expiry(now, created)
        if kind == "resend":
            verification.calls += 1
            verification.code_attempts = 0
            verification.last_call_at = now

        def row(state: str) -> Attempt | None:
            if state == "recorded already":
                return None
            # A call closed in another tab while it was being placed is not brought back (and is
            # cancelled below), but it was placed: its row names the provider reference.
            outcome = Outcome.SENT if state == "recorded" else Outcome.NO_VERIFICATION
            return self.attempts.row(
                kind, outcome, ip, verification=verification, provider_ref=created.id, latency=latency, at=now
            )

        async def write() -> None:
            state = await self.verifications.record_call(verification, row)
            if state == "gone":
                await self.cancel_quietly(placed.provider, created.id)

        what = f"{kind}: verification {verification.id}, call placed as provider ref {created.id} at {placed.provider}"
        recorded = await self.outbox.write(what, write)
        if recorded and verification.status != "pending":
            raise Refusal(Outcome.NO_VERIFICATION)
        return replace(self.shown.pending(verification), recorded=recorded)

    def _call_failed(
        self, kind: str, outcome: Outcome, verification: Verification, retry_after: int | None = None
    ) -> Refusal:
        # A start's person is back at the phone form; a resend's keeps the code form of its verification.
        pending = None if kind == "start" else self.shown.pending(verification)
        return Refusal(outcome, retry_after=retry_after, pending=pending)

    async def _close(
        self,
        verification: Verification,
        status: str,
        ip: str,
        *,
        kind: str,
        latency: int | None = None,
        outcome: Outcome | None = None,
        reason: str | None = None,
    ) -> None:
        """Close the verification whose call could not be placed as `status`, and log it."""

        def row(_: str) -> Attempt:
            meanwhile = self.shown.meanwhile(kind, verification, verification.provider_ref)
            logged = meanwhile.outcome if meanwhile is not None else (outcome or Outcome(status))
            return self.attempts.row(kind, logged, ip, verification=verification, latency=latency, reason=reason)

        # Verified meanwhile (another tab): logged as already_verified, but the caller still
        # answers call_failed: the call this request asked for was not placed.
        await self.verifications.close(verification, status, row)

    async def cancel_quietly(self, provider: str | None, ref: str) -> None:
        try:
            await self.providers.client(provider).cancel(ref)
        except ProviderError as exc:
            # The old call's code simply expires; nothing for the person to do.
            log.info("cancelling verification %s at the provider failed: %s", ref, exc)

    def _expiry(self, now: datetime, created: ProviderVerification) -> datetime:
        ours = now + timedelta(seconds=self.options.timeout)
        return min(ours, created.valid_until) if created.valid_until else ours
