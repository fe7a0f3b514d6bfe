"""The verification flow: start a call, check a code, call again.

No HTTP here: functions take plain values (what was typed, the client IP, the
verification id from the session) and return plain results or raise a
`Refusal`. Every decision, allowed or refused, writes one attempts row, and
the row is committed before the function returns.

No database transaction is held open while the provider is called: the
provider can take seconds, and SQLite has a single writer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from webapp.attempts import AttemptLog, printable
from webapp.codes import InvalidCode, clean_code
from webapp.errors import (
    InvalidParameter,
    InvalidToken,
    NotFound,
    ProviderError,
    ProviderUnauthorized,
    Refusal,
    TokenExpired,
    TokenProcessed,
)
from webapp.guard import Guard, wait_text
from webapp.models import Verification
from webapp.phone import InvalidNumber, PhoneNumber, format_international, number_from_e164, parse_phone
from webapp.provider import CALL, CallOptions, Provider, ProviderVerification
from webapp.settings import Settings
from webapp.verifications import GONE, Verifications

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]

CALL_FAILED = "We couldn't place the call. Please try again later."


@dataclass(frozen=True, slots=True)
class Pending:
    """A verification waiting for its code, as the code form shows it."""

    id: str
    number: str
    international: str
    status: str
    attempts_left: int
    code_length: int
    expires_at: datetime
    #: seconds until "Call me again" is allowed, when the flow last looked
    resend_in: int
    #: the person asked again for a number already being called: no new call
    reused: bool = False

    @property
    def closed(self) -> bool:
        """The code can no longer be checked; only a new call helps."""
        return self.status != "pending"


@dataclass(frozen=True, slots=True)
class Verified:
    """A verification that ended verified, as the result shows it."""

    number: str
    international: str
    verified_at: datetime


class Flow:
    """Start, check and repeat verifications, logging every decision."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        provider: Provider,
        guard: Guard,
        settings: Settings,
        clock: Clock,
    ) -> None:
        self._sessions = sessionmaker
        self._provider = provider
        self._guard = guard
        self._settings = settings
        self._options: CallOptions = settings.call
        self._clock = clock
        self._verifications = Verifications(sessionmaker, clock, settings.call.timeout)
        self._attempts = AttemptLog(sessionmaker, clock)

    async def admit(self, kind: str, ip: str, verification_id: str | None = None) -> None:
        """The client's own limits (deny list, per-IP counters), before its form is read."""
        try:
            await self._guard.admit_ip(kind, ip)
        except Refusal as refusal:
            await self._attempts.write(kind, refusal.outcome, ip)
            if refusal.step == "code":
                refusal.pending = await self.pending(verification_id)
            raise

    async def start(self, raw_number: str, region: str, ip: str, current_id: str | None = None) -> Pending:
        """Parse the number, pass the guard and place a call; a new verification.

        `current_id` is the session's verification: asked again for the same
        number while its code is still good, it is re-used rather than called twice.
        """
        region = printable(region.strip().upper(), 3)
        try:
            number = parse_phone(raw_number, region)
        except InvalidNumber:
            raw = printable(raw_number)
            await self._attempts.write("start", "invalid_number", ip, raw_input=raw, region=region or None)
            raise
        current = await self._verifications.get(current_id)
        now = self._clock()
        if current is not None and current.status == "pending" and now < current.expires_at:
            if current.number == number.e164:
                await self._attempts.write("start", "reused", ip, verification=current)
                return replace(self._pending(current), reused=True)
        try:
            await self._guard.check_number(number)
            await self._verifications.refuse_if_live(number.e164)
            await self._guard.count_call(number)
            verification = await self._verifications.reserve(number, ip)
        except Refusal as refusal:
            await self._attempts.write("start", refusal.outcome, ip, number=number.e164, region=number.region)
            raise
        if current is not None:
            await self.cancel(current.id)
        created, latency = await self._create(number, ip, "start", verification)
        now = self._clock()
        async with self._verifications.change(verification) as (session, verification):
            verification.provider_ref = created.id
            verification.expires_at = self._expiry(now, created)
            session.add(self._attempts.row("start", "sent", ip, verification=verification, latency=latency))
        return self._pending(verification)

    async def resend(self, verification_id: str | None, ip: str) -> Pending:
        """Place a new call for the verification in progress ("Call me again")."""
        verification = await self._load(verification_id, "resend", ip)
        if verification.status == "verified":
            await self._attempts.write("resend", "already_verified", ip, verification=verification)
            raise Refusal("already_verified", "This number is already verified.", step="phone", status_code=409)
        wait = self._resend_wait(verification, self._clock())
        if wait > 0:
            await self._attempts.write("resend", "resend_too_soon", ip, verification=verification)
            raise Refusal(
                "resend_too_soon",
                f"You can ask for a new call in {wait_text(wait)}.",
                step="code",
                status_code=429,
                retry_after=wait,
                pending=self._pending(verification),
            )
        number = number_from_e164(verification.number)
        # Past its expiry a pending verification no longer holds the number: reopen it like a closed one.
        was_live = verification.status == "pending" and self._clock() < verification.expires_at
        try:
            await self._guard.check_number(number)
            await self._guard.count_call(number)
            if not was_live:
                verification = await self._verifications.reopen(verification)
        except Refusal as refusal:
            await self._attempts.write("resend", refusal.outcome, ip, verification=verification)
            if refusal.outcome not in ("no_verification", "already_verified"):
                refusal.step, refusal.pending = "code", self._pending(verification)
            raise
        if was_live and verification.provider_ref:
            await self._cancel_quietly(verification.provider_ref)
        created, latency = await self._create(number, ip, "resend", verification)
        now = self._clock()
        async with self._verifications.change(verification) as (session, fresh):
            # Closed in another tab while the call was being placed: don't bring it back.
            still_live = fresh.status == "pending"
            if still_live:
                fresh.provider_ref = created.id
                fresh.code_attempts = 0
                fresh.calls += 1
                fresh.last_call_at = now
                fresh.expires_at = self._expiry(now, created)
                session.add(self._attempts.row("resend", "sent", ip, verification=fresh, latency=latency))
        if not still_live:
            await self._cancel_quietly(created.id)
            await self._attempts.write("resend", "no_verification", ip, verification=fresh, latency=latency)
            raise Refusal("no_verification", GONE, step="phone", status_code=409)
        verification = fresh
        return self._pending(verification)

    async def confirm(self, verification_id: str | None, raw_code: str, ip: str) -> Verified:
        """Check a code; Verified only when the provider says "verified"."""
        verification = await self._load(verification_id, "check", ip)
        if verification.status == "verified":
            await self._attempts.write("check", "already_verified", ip, verification=verification)
            return self._verified(verification)
        if verification.status != "pending":
            await self._attempts.write("check", "closed", ip, verification=verification)
            raise self._closed(verification, "This code can no longer be used. Ask for a new call.")
        try:
            code = clean_code(raw_code, self._options.token_length)
        except InvalidCode as refusal:
            await self._attempts.write("check", "invalid_code", ip, verification=verification)
            refusal.pending = self._pending(verification)
            raise
        if self._clock() >= verification.expires_at:
            await self._close(verification, "expired", ip)
            raise self._closed(verification, "The code has expired. Ask for a new call.")

        started = time.perf_counter()
        try:
            checked = await self._provider.check(verification.provider_ref or "", code)
        except InvalidToken:
            refusal = await self._wrong_code(verification, ip, _ms(started))
            if refusal is None:
                return self._verified(verification)
            raise refusal from None
        except (TokenExpired, NotFound):
            if not await self._close(verification, "expired", ip, latency=_ms(started)):
                return self._verified(verification)
            raise self._closed(verification, "The code has expired. Ask for a new call.") from None
        except TokenProcessed:
            # Also what a second click with the right code gets while the first is being
            # recorded: ask the provider how it ended rather than guess.
            if await self._provider_says(verification) == "verified":
                return await self._verify(verification, ip, _ms(started))
            if not await self._close(verification, "failed", ip, latency=_ms(started), outcome="closed"):
                return self._verified(verification)
            raise self._closed(verification, "This code can no longer be used. Ask for a new call.") from None
        except ProviderError as exc:
            log.warning("code check failed at the provider: %s", exc)
            await self._attempts.write("check", "provider_error", ip, verification=verification, latency=_ms(started))
            raise Refusal(
                "provider_error",
                "We couldn't check the code just now. Please try again.",
                step="code",
                status_code=503,
                pending=self._pending(verification),
            ) from None
        return await self._checked(verification, checked, ip, _ms(started))

    async def pending(self, verification_id: str | None) -> Pending | None:
        """The verification behind a session, if it is still worth showing."""
        verification = await self._verifications.get(verification_id)
        if verification is None or verification.status in ("verified", "cancelled"):
            return None
        return self._pending(verification)

    async def healthy(self) -> bool:
        """The attempts log answers a trivial query."""
        try:
            async with self._sessions() as session:
                await session.execute(text("SELECT 1"))
        except Exception:  # any driver error means "not healthy", which is the answer
            log.exception("health check: the database does not answer")
            return False
        return True

    async def cancel(self, verification_id: str | None) -> None:
        """Give up on a verification ("use a different number")."""
        if not verification_id:
            return
        cancelled = await self._verifications.cancel(verification_id)
        if cancelled is not None and cancelled.provider_ref:
            await self._cancel_quietly(cancelled.provider_ref)

    # -- the parts -------------------------------------------------------------

    async def _create(
        self, number: PhoneNumber, ip: str, kind: str, verification: Verification
    ) -> tuple[ProviderVerification, int]:
        """Ask the provider to call; on failure the verification is closed and the refusal logged."""
        started = time.perf_counter()
        try:
            created = await self._provider.create(number.e164, CALL, self._options)
        except ProviderError as exc:
            if not isinstance(exc, ProviderUnauthorized):
                log.warning("placing a call failed at the provider: %s", exc)
            await self._close(verification, "failed", ip, kind=kind, outcome="provider_error", latency=_ms(started))
            if isinstance(exc, InvalidParameter) and exc.parameter == "recipient":
                raise Refusal("provider_error", "We can't call this number. Check it and try again.",
                              field="phone") from None
            raise self._call_failed(kind, "provider_error", verification) from None
        if created.status != "sent":
            log.warning("the provider could not place the call to %s: status %s", number.e164, created.status)
            verification.provider_ref = created.id
            await self._close(verification, "failed", ip, kind=kind, outcome="call_failed", latency=_ms(started))
            raise self._call_failed(kind, "call_failed", verification)
        return created, _ms(started)

    def _call_failed(self, kind: str, outcome: str, verification: Verification) -> Refusal:
        if kind == "start":
            return Refusal(outcome, CALL_FAILED, status_code=503)
        return Refusal(outcome, CALL_FAILED, status_code=503, step="code", pending=self._pending(verification))

    async def _checked(self, verification: Verification, checked: ProviderVerification, ip: str, latency: int) -> Verified:
        if checked.status == "verified" and checked.id == verification.provider_ref:
            return await self._verify(verification, ip, latency)
        if checked.status == "expired":
            if not await self._close(verification, "expired", ip, latency=latency):
                return self._verified(verification)
            raise self._closed(verification, "The code has expired. Ask for a new call.")
        if checked.status == "failed":
            if not await self._close(verification, "failed", ip, latency=latency, outcome="attempts_exhausted"):
                return self._verified(verification)
            raise self._closed(verification, "That code was wrong too many times. Ask for a new call.")
        # A 200 that is not "verified" is not success, whatever else it says.
        log.warning("provider answered a check with status %r for %s", checked.status, verification.provider_ref)
        refusal = await self._wrong_code(verification, ip, latency, outcome="unverified")
        if refusal is None:
            return self._verified(verification)
        raise refusal

    async def _verify(self, verification: Verification, ip: str, latency: int | None) -> Verified:
        """The provider said verified: record it once; a repeat is logged as such."""
        async with self._sessions() as session:
            first = await self._verifications.mark_verified(session, verification, self._clock())
            outcome = "verified" if first else "already_verified"
            session.add(self._attempts.row("check", outcome, ip, verification=verification, latency=latency))
            await session.commit()
        return self._verified(verification)

    async def _wrong_code(
        self, verification: Verification, ip: str, latency: int, outcome: str = "wrong_code"
    ) -> Refusal | None:
        """Count a wrong code; the refusal to show, or None if the verification was verified meanwhile."""
        async with self._sessions() as session:
            status = await self._verifications.count_wrong_code(session, verification, self._options.max_attempts)
            if status == "verified":
                outcome = "already_verified"
            elif status == "failed" and verification.code_attempts >= self._options.max_attempts:
                outcome = "attempts_exhausted"
            elif status != "pending":
                outcome = "closed"
            session.add(self._attempts.row("check", outcome, ip, verification=verification, latency=latency))
            await session.commit()
        if status == "verified":
            return None
        if outcome == "attempts_exhausted":
            return self._closed(verification, "That code was wrong too many times. Ask for a new call.")
        if status != "pending":
            return self._closed(verification, "This code can no longer be used. Ask for a new call.")
        left = self._options.max_attempts - verification.code_attempts
        return Refusal(
            outcome,
            f"That code is not right. {left} {'attempt' if left == 1 else 'attempts'} left.",
            step="code",
            field="code",
            pending=self._pending(verification),
        )

    async def _load(self, verification_id: str | None, kind: str, ip: str) -> Verification:
        verification = await self._verifications.get(verification_id)
        if verification is None or verification.status == "cancelled":
            await self._attempts.write(kind, "no_verification", ip)
            raise Refusal("no_verification", GONE, step="phone", status_code=409)
        return verification

    async def _close(
        self,
        verification: Verification,
        status: str,
        ip: str,
        *,
        kind: str = "check",
        latency: int | None = None,
        outcome: str | None = None,
    ) -> bool:
        """Close the verification as `status`; False (and nothing changed) if it was verified meanwhile."""
        async with self._sessions() as session:
            now_status = await self._verifications.close(session, verification, status)
            logged = "already_verified" if now_status == "verified" else (outcome or status)
            session.add(self._attempts.row(kind, logged, ip, verification=verification, latency=latency))
            await session.commit()
        return now_status != "verified"

    async def _provider_says(self, verification: Verification) -> str | None:
        """The verification's status at the provider, or None if it can't say."""
        try:
            return (await self._provider.fetch(verification.provider_ref or "")).status
        except ProviderError as exc:
            log.info("fetching verification %s from the provider failed: %s", verification.provider_ref, exc)
            return None

    def _closed(self, verification: Verification, message: str) -> Refusal:
        return Refusal("closed", message, step="code", status_code=422, pending=self._pending(verification))

    async def _cancel_quietly(self, ref: str) -> None:
        try:
            await self._provider.cancel(ref)
        except ProviderError as exc:
            # The old call's code simply expires; nothing for the person to do.
            log.info("cancelling verification %s at the provider failed: %s", ref, exc)

    def _expiry(self, now: datetime, created: ProviderVerification) -> datetime:
        ours = now + timedelta(seconds=self._options.timeout)
        return min(ours, created.valid_until) if created.valid_until else ours

    def _resend_wait(self, verification: Verification, now: datetime) -> int:
        ready = verification.last_call_at + timedelta(seconds=self._settings.resend_cooldown)
        return max(0, int((ready - now).total_seconds() + 0.999))

    def _pending(self, verification: Verification) -> Pending:
        now = self._clock()
        return Pending(
            id=verification.id,
            number=verification.number,
            international=format_international(verification.number),
            status=verification.status,
            attempts_left=max(0, self._options.max_attempts - verification.code_attempts),
            code_length=self._options.token_length,
            expires_at=verification.expires_at,
            resend_in=self._resend_wait(verification, now),
        )

    def _verified(self, verification: Verification) -> Verified:
        return Verified(
            number=verification.number,
            international=format_international(verification.number),
            verified_at=verification.verified_at or self._clock(),
        )


def _ms(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)
