"""The verification flow: start a call, check a code, call again.

No HTTP here: functions take plain values (what was typed, the client IP, the
verification id from the session) and return plain results or raise a
`Refusal`. Every decision, allowed or refused, writes one attempts row, and
the row is committed before the function returns.

No database transaction is held open while the provider is called: the
provider can take seconds, and SQLite has a single writer.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import replace
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from webapp.attempt_writer import AttemptWriter
from webapp.attempts import AttemptLog, printable
from webapp.calls import Calls
from webapp.checks import CHECK_FAILED, EXPIRED, Checks
from webapp.codes import InvalidCode, clean_code
from webapp.db import answers
from webapp.errors import (
    InvalidToken,
    NotFound,
    ProviderError,
    Refusal,
    TokenExpired,
    TokenProcessed,
)
from webapp.guard import Guard
from webapp.leases import LeaseBusy, Leases
from webapp.models import Verification
from webapp.outbox import Outbox
from webapp.outcomes import Form, Outcome
from webapp.phone import InvalidNumber, number_from_e164, parse_phone
from webapp.progress import Pending, Verified
from webapp.provider import CallOptions
from webapp.provider.failover import Providers
from webapp.settings import Settings
from webapp.shown import Shown
from webapp.verifications import Verifications

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


class Flow:
    """Start, check and repeat verifications, logging every decision."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        providers: Providers,
        guard: Guard,
        settings: Settings,
        clock: Clock,
        *,
        outbox: Outbox,
        writer: AttemptWriter | None = None,
    ) -> None:
        self._sessions = sessionmaker
        self._providers = providers
        self._guard = guard
        self._options: CallOptions = settings.call
        self._clock = clock
        self._shown = Shown(settings.call, settings.resend_cooldown, clock)
        self._verifications = Verifications(sessionmaker, clock, settings.call.timeout)
        self._attempts = AttemptLog(sessionmaker, clock, writer=writer)
        self._outbox = outbox
        self._checks = Checks(providers, self._verifications, self._attempts, self._shown, self._options, clock)
        self._calls = Calls(providers, self._verifications, self._attempts, outbox, self._shown, self._options, clock)
        #: the JSON API client this flow starts verifications for (`for_api`); None: the page
        self._api_client: str | None = None
        # A turn covers at most two provider requests (cancel + create, check + fetch) and a few
        # writes; a request waits about that long for another process's turn, then says "busy".
        deadline = settings.provider_deadline
        self._leases = Leases(sessionmaker, clock, duration=2 * deadline + 10, wait=2 * deadline + 2)

    def for_client(self, client_id: str | None) -> Flow:
        """This flow with every attempts row naming `client_id`, the site of a hand-off; itself for None."""
        if client_id is None:
            return self
        bound = copy.copy(self)  # shares everything (sessions, providers, guard, leases, outbox) but the log
        bound._attempts = self._attempts.for_client(client_id)
        bound._calls = replace(self._calls, attempts=bound._attempts)
        bound._checks = replace(self._checks, attempts=bound._attempts)
        return bound

    def for_api(self, client_id: str, language: str | None = None) -> Flow:
        """This flow for a JSON API client: the verifications it starts are the client's, its rows say via "api".

        `language` replaces VERIFY_LANGUAGE for the calls this flow places.
        """
        bound = copy.copy(self)
        bound._attempts = self._attempts.for_client(client_id, via="api")
        bound._api_client = client_id
        if language is not None:
            bound._options = replace(self._options, language=language)
        bound._calls = replace(self._calls, attempts=bound._attempts, options=bound._options)
        bound._checks = replace(self._checks, attempts=bound._attempts, options=bound._options)
        return bound

    @property
    def attempts(self) -> AttemptLog:
        """The attempts log this flow writes to (naming its site or API client): `webapp.forms.read_logged`'s."""
        return self._attempts

    async def admit(self, kind: str, ip: str, verification_id: str | None = None) -> None:
        """The client's own limits (deny list, per-IP counters), before its form is read."""
        try:
            await self._guard.admit_ip(kind, ip)
        except Refusal as refusal:
            await self._attempts.write(kind, refusal.outcome, ip)
            if kind == "check" and refusal.outcome == Outcome.BLOCKED_IP:
                # The limit on checking codes: the code form stays, for the verification it was showing.
                raise refusal.showing(await self.pending(verification_id)) from None
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
            await self._attempts.write("start", Outcome.INVALID_NUMBER, ip, raw_input=raw, region=region or None)
            raise
        current = await self._verifications.get(current_id)
        now = self._clock()
        if current is not None and current.status == "pending" and now < current.expires_at:
            if current.number == number.e164:
                await self._attempts.write("start", Outcome.REUSED, ip, verification=current)
                return replace(self._shown.pending(current), reused=True)
        try:
            await self._guard.check_number(number)
            live_until = await self._verifications.live_until(number.e164)
            if live_until is not None:
                raise await self._guard.number_busy(number, live_until)
            await self._guard.count_call(number, self._api_client)
            verification = await self._verifications.reserve(number, ip, api_client=self._api_client)
        except Refusal as refusal:
            await self._attempts.write("start", refusal.outcome, ip, number=number.e164, region=number.region)
            raise
        if current is not None:
            try:
                await self.cancel(current.id, ip)
            except Refusal:
                pass  # another worker has the old call in hand; unclaimed, it simply expires
        return await self._calls.place("start", number, verification, ip)

    async def resend(self, verification_id: str | None, ip: str) -> Pending:
        """Place a new call for the verification in progress ("Call me again")."""
        async with self._turn(verification_id, "resend", ip):
            return await self._resend(verification_id, ip)

    async def _resend(self, verification_id: str | None, ip: str) -> Pending:
        verification = await self._load(verification_id, "resend", ip)
        meanwhile = self._shown.meanwhile("resend", verification, verification.provider_ref)
        if meanwhile is not None:
            await self._attempts.write("resend", meanwhile.outcome, ip, verification=verification)
            raise meanwhile
        wait = self._shown.resend_wait(verification, self._clock())
        if wait > 0:
            await self._attempts.write("resend", Outcome.RESEND_TOO_SOON, ip, verification=verification)
            raise Refusal(Outcome.RESEND_TOO_SOON, retry_after=wait, pending=self._shown.pending(verification))
        number = number_from_e164(verification.number)
        # Past its expiry a pending verification no longer holds the number: reopen it like a closed one.
        was_live = verification.status == "pending" and self._clock() < verification.expires_at
        try:
            await self._guard.check_number(number)
            await self._guard.count_call(number, self._api_client)
            if not was_live:
                verification = await self._verifications.reopen(verification)
        except Refusal as refusal:
            await self._attempts.write("resend", refusal.outcome, ip, verification=verification)
            if refusal.told.form == Form.CURRENT:  # not over: the code form stays
                raise refusal.showing(self._shown.pending(verification)) from None
            raise
        if was_live and verification.provider_ref:
            await self._calls.cancel_quietly(verification.provider, verification.provider_ref)
        return await self._calls.place("resend", number, verification, ip)

    async def confirm(
        self, verification_id: str | None, raw_code: str, ip: str, for_call: str | None = None
    ) -> Verified:
        """Check a code; Verified only when the provider says "verified" for the call it was typed for.

        `for_call` is the call the code form was showing (`Pending.call`): a code
        typed for a call that "Call me again" has replaced is not checked.
        """
        async with self._turn(verification_id, "check", ip):
            return await self._confirm(verification_id, raw_code, ip, for_call)

    async def _confirm(self, verification_id: str | None, raw_code: str, ip: str, for_call: str | None) -> Verified:
        verification = await self._load(verification_id, "check", ip)
        meanwhile = self._shown.meanwhile("check", verification, verification.provider_ref)
        if meanwhile is not None:
            # An old tab or a replayed cookie: a finished verification is no fresh proof.
            await self._attempts.write("check", meanwhile.outcome, ip, verification=verification)
            raise meanwhile
        if verification.status != "pending":
            await self._attempts.write("check", Outcome.CLOSED, ip, verification=verification)
            raise self._shown.closed(verification)
        if verification.provider_ref is None or _later_call(for_call, verification.calls):
            # Its call was placed while the database was away and is not written down yet (webapp.outbox).
            await self._attempts.write("check", Outcome.VERIFICATION_BUSY, ip, verification=verification)
            raise Refusal(Outcome.VERIFICATION_BUSY, retry_after=2, pending=self._shown.pending(verification))
        if for_call is not None and for_call != str(verification.calls):
            await self._attempts.write("check", Outcome.SUPERSEDED, ip, verification=verification)
            raise self._shown.superseded(verification)
        try:
            code = clean_code(raw_code, self._options.token_length)
        except InvalidCode as refusal:
            await self._attempts.write("check", Outcome.INVALID_CODE, ip, verification=verification)
            raise refusal.showing(self._shown.pending(verification)) from None
        if self._clock() >= verification.expires_at:
            raise await self._checks.close_check(verification, "expired", ip, EXPIRED)

        started = time.perf_counter()
        try:
            checked = await self._providers.client(verification.provider).check(verification.provider_ref or "", code)
        except InvalidToken:
            raise await self._checks.wrong_code(verification, ip, _ms(started)) from None
        except (TokenExpired, NotFound):
            raise await self._checks.close_check(verification, "expired", ip, EXPIRED, latency=_ms(started)) from None
        except TokenProcessed:
            # Also what a check gets when the right code was recorded at the provider
            # but not by us (the database was away): ask the provider how it ended.
            if await self._checks.provider_says(verification) == "verified":
                return await self._checks.verify(verification, ip, _ms(started))
            raise await self._checks.close_check(
                verification, "failed", ip, None, latency=_ms(started), outcome=Outcome.CLOSED
            ) from None
        except ProviderError as exc:
            log.warning("code check failed at the provider: %s", exc)
            await self._attempts.write(
                "check", Outcome.PROVIDER_ERROR, ip, verification=verification, latency=_ms(started)
            )
            raise Refusal(Outcome.PROVIDER_ERROR, CHECK_FAILED, pending=self._shown.pending(verification)) from None
        return await self._checks.checked(verification, checked, ip, _ms(started))

    async def pending(self, verification_id: str | None) -> Pending | None:
        """The verification behind a session, if it is still worth showing."""
        verification = await self._verifications.get(verification_id)
        if verification is None or verification.status in ("verified", "cancelled"):
            return None
        return self._shown.pending(verification)

    async def find(self, verification_id: str | None) -> Pending | None:
        """The verification with this id whatever its status (the JSON API shows every one), or None."""
        verification = await self._verifications.get(verification_id)
        return None if verification is None else self._shown.pending(verification)

    async def result(self, verification_id: str | None) -> Verified | None:
        """The verification behind a result page, if it ended verified."""
        verification = await self._verifications.get(verification_id)
        if verification is None or verification.status != "verified":
            return None
        return self._shown.verified(verification)

    async def verified_since(self, verification_id: str | None, since: datetime) -> Verified | None:
        """The verification, if it ended verified at or after `since`.

        The seam for the OpenID Connect hand-off: only a verification completed
        after the authorization request began may satisfy it, never an older one
        a session cookie still points at.
        """
        verified = await self.result(verification_id)
        return verified if verified is not None and verified.verified_at >= since else None

    async def healthy(self) -> bool:
        """The attempts log's database answers (webapp.db.answers)."""
        return await answers(self._sessions)

    @property
    def providers(self) -> dict[str, str]:
        """Each listed provider, "ok" or "skipped" by its breaker (this process's view)."""
        return self._providers.states()

    @property
    def unrecorded(self) -> int:
        """Calls placed that the outbox still has to write down."""
        return len(self._outbox)

    async def cancel(self, verification_id: str | None, ip: str) -> None:
        """Give up on a verification ("use a different number"), logged as `cancelled`."""
        if not verification_id:
            return
        try:
            async with self._leases.hold(verification_id):
                cancelled = await self._verifications.cancel(
                    verification_id, lambda row: self._attempts.row("cancel", Outcome.CANCELLED, ip, verification=row)
                )
        except LeaseBusy:
            raise Refusal(
                Outcome.VERIFICATION_BUSY, retry_after=5, pending=await self.pending(verification_id)
            ) from None
        if cancelled is not None and cancelled.provider_ref:
            await self._calls.cancel_quietly(cancelled.provider, cancelled.provider_ref)

    # -- the parts -------------------------------------------------------------

    @asynccontextmanager
    async def _turn(self, verification_id: str | None, kind: str, ip: str) -> AsyncIterator[None]:
        """The verification is this request's alone for the block (webapp.leases)."""
        async with AsyncExitStack() as stack:
            try:
                await stack.enter_async_context(self._leases.hold(verification_id))
            except LeaseBusy:
                verification = await self._verifications.get(verification_id)
                await self._attempts.write(kind, Outcome.VERIFICATION_BUSY, ip, verification=verification)
                raise Refusal(
                    Outcome.VERIFICATION_BUSY,
                    retry_after=5,
                    pending=self._shown.pending(verification) if verification else None,
                ) from None
            yield

    async def _load(self, verification_id: str | None, kind: str, ip: str) -> Verification:
        verification = await self._verifications.get(verification_id)
        if verification is None or verification.status == "cancelled":
            await self._attempts.write(kind, Outcome.NO_VERIFICATION, ip)
            raise Refusal(Outcome.NO_VERIFICATION)
        return verification


def _later_call(for_call: str | None, calls: int) -> bool:
    """The code form is for a call newer than the database knows of."""
    return for_call is not None and for_call.isdigit() and len(for_call) < 6 and int(for_call) > calls


def _ms(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)
