"""Checking a code: what stops it before the provider, the provider's check, and what the answer changes.

The flow takes the verification's turn and loads it (webapp.flow). A code that
can't be right, or is typed for a call that is over or replaced, never reaches
the provider. With the provider's answer a check records verified once, counts
a wrong code, or closes a call that is over: each change is one transaction of
webapp.verifications, with its attempts row; another request may have changed
the verification first (`Shown.meanwhile`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from webapp.attempts import AttemptLog
from webapp.codes import InvalidCode, clean_code
from webapp.errors import InvalidToken, NotFound, ProviderError, Refusal, TokenExpired, TokenProcessed
from webapp.models import Attempt, Verification
from webapp.outcomes import Outcome
from webapp.progress import Verified
from webapp.provider import CallOptions, ProviderVerification
from webapp.provider.failover import Providers
from webapp.shown import Shown
from webapp.verifications import Verifications

log = logging.getLogger(__name__)

#: Why a verification is closed, where the check knows (otherwise the table's: it can no longer be used).
EXPIRED = "The code has expired. Ask for a new call."
EXHAUSTED = "That code was wrong too many times. Ask for a new call."
CHECK_FAILED = "We couldn't check the code just now. Please try again."


@dataclass(frozen=True)
class Checks:
    """The flow's checks of a code: its providers, and where each change and its attempts row are written."""

    providers: Providers
    verifications: Verifications
    attempts: AttemptLog
    shown: Shown
    options: CallOptions
    clock: Callable[[], datetime]

    async def check(self, verification: Verification, raw_code: str, ip: str, for_call: str | None) -> Verified:
        """Check a code for the verification (its turn taken); Verified only when the provider says "verified"."""
        meanwhile = self.shown.meanwhile("check", verification, verification.provider_ref)
        if meanwhile is not None:
            # An old tab or a replayed cookie: a finished verification is no fresh proof.
            await self.attempts.write("check", meanwhile.outcome, ip, verification=verification)
            raise meanwhile
        if verification.status != "pending":
            await self.attempts.write("check", Outcome.CLOSED, ip, verification=verification)
            raise self.shown.closed(verification)
        if verification.provider_ref is None or _later_call(for_call, verification.calls):
            # Its call was placed while the database was away and is not written down yet (webapp.outbox).
            await self.attempts.write("check", Outcome.VERIFICATION_BUSY, ip, verification=verification)
            raise Refusal(Outcome.VERIFICATION_BUSY, retry_after=2, pending=self.shown.pending(verification))
        if for_call is not None and for_call != str(verification.calls):
            await self.attempts.write("check", Outcome.SUPERSEDED, ip, verification=verification)
            raise self.shown.superseded(verification)
        try:
            code = clean_code(raw_code, self.options.token_length)
        except InvalidCode as refusal:
            await self.attempts.write("check", Outcome.INVALID_CODE, ip, verification=verification)
            raise refusal.showing(self.shown.pending(verification)) from None
        if self.clock() >= verification.expires_at:
            raise await self.close_check(verification, "expired", ip, EXPIRED)

        started = time.perf_counter()
        try:
            checked = await self.providers.client(verification.provider).check(verification.provider_ref or "", code)
        except InvalidToken:
            raise await self.wrong_code(verification, ip, _ms(started)) from None
        except (TokenExpired, NotFound):
            raise await self.close_check(verification, "expired", ip, EXPIRED, latency=_ms(started)) from None
        except TokenProcessed:
            # Also what a check gets when the right code was recorded at the provider
            # but not by us (the database was away): ask the provider how it ended.
            if await self.provider_says(verification) == "verified":
                return await self.verify(verification, ip, _ms(started))
            raise await self.close_check(
                verification, "failed", ip, None, latency=_ms(started), outcome=Outcome.CLOSED
            ) from None
        except ProviderError as exc:
            log.warning("code check failed at the provider: %s", exc)
            await self.attempts.write(
                "check", Outcome.PROVIDER_ERROR, ip, verification=verification, latency=_ms(started)
            )
            raise Refusal(Outcome.PROVIDER_ERROR, CHECK_FAILED, pending=self.shown.pending(verification)) from None
        return await self.checked(verification, checked, ip, _ms(started))

    async def checked(
        self, verification: Verification, checked: ProviderVerification, ip: str, latency: int
    ) -> Verified:
        if checked.status == "verified" and checked.id == verification.provider_ref:
            return await self.verify(verification, ip, latency)
        if checked.status == "expired":
            raise await self.close_check(verification, "expired", ip, EXPIRED, latency=latency)
        if checked.status == "failed":
            raise await self.close_check(
                verification, "failed", ip, EXHAUSTED, latency=latency, outcome=Outcome.ATTEMPTS_EXHAUSTED
            )
        # A 200 that is not "verified" is not success, whatever else it says.
        log.warning("provider answered a check with status %r for %s", checked.status, verification.provider_ref)
        raise await self.wrong_code(verification, ip, latency, outcome=Outcome.UNVERIFIED)

    async def verify(self, verification: Verification, ip: str, latency: int | None) -> Verified:
        """The provider said verified: record it once; only the request that recorded it succeeds."""
        ref = verification.provider_ref

        def refusal(first: bool) -> Refusal | None:
            return (
                None if first else self.shown.meanwhile("check", verification, ref) or self.shown.closed(verification)
            )

        def row(first: bool) -> Attempt:
            refused = refusal(first)
            outcome = Outcome.VERIFIED if refused is None else refused.outcome
            return self.attempts.row("check", outcome, ip, verification=verification, latency=latency)

        first = await self.verifications.mark_verified(verification, self.clock(), row)
        refused = refusal(first)
        if refused is not None:
            raise refused
        return self.shown.verified(verification)

    async def wrong_code(
        self, verification: Verification, ip: str, latency: int, outcome: Outcome = Outcome.WRONG_CODE
    ) -> Refusal:
        """Count a wrong code; the refusal to show."""
        ref = verification.provider_ref

        def logged(status: str) -> tuple[Refusal | None, Outcome]:
            race = self.shown.meanwhile("check", verification, ref)
            if race is not None:
                return race, race.outcome
            if status == "failed" and verification.code_attempts >= self.options.max_attempts:
                return None, Outcome.ATTEMPTS_EXHAUSTED
            return None, outcome if status == "pending" else Outcome.CLOSED

        def row(status: str) -> Attempt:
            return self.attempts.row("check", logged(status)[1], ip, verification=verification, latency=latency)

        status = await self.verifications.count_wrong_code(verification, self.options.max_attempts, row)
        race, told = logged(status)
        if race is not None:
            return race
        if told == Outcome.ATTEMPTS_EXHAUSTED:
            return self.shown.closed(verification, EXHAUSTED)
        if status != "pending":
            return self.shown.closed(verification)
        left = self.options.max_attempts - verification.code_attempts
        return Refusal(
            told,
            f"That code is not right. {left} {'attempt' if left == 1 else 'attempts'} left.",
            field="code",
            pending=self.shown.pending(verification),
        )

    async def close_check(
        self,
        verification: Verification,
        status: str,
        ip: str,
        message: str | None,
        *,
        latency: int | None = None,
        outcome: Outcome | None = None,
    ) -> Refusal:
        """Close the call a check found over as `status`, and log it; the refusal for the person."""
        ref = verification.provider_ref

        def row(_: str) -> Attempt:
            race = self.shown.meanwhile("check", verification, ref)
            logged = race.outcome if race is not None else (outcome or Outcome(status))
            return self.attempts.row("check", logged, ip, verification=verification, latency=latency)

        await self.verifications.close(verification, status, row, on_call=ref)
        return self.shown.meanwhile("check", verification, ref) or self.shown.closed(verification, message)

    async def provider_says(self, verification: Verification) -> str | None:
        """The verification's status at the provider, or None if it can't say."""
        try:
            return (await self.providers.client(verification.provider).fetch(verification.provider_ref or "")).status
        except ProviderError as exc:
            log.info("fetching verification %s from the provider failed: %s", verification.provider_ref, exc)
            return None


def _later_call(for_call: str | None, calls: int) -> bool:
    """The code form is for a call newer than the database knows of."""
    return for_call is not None and for_call.isdigit() and len(for_call) < 6 and int(for_call) > calls


def _ms(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)
