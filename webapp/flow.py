"""The verification flow: start a call, check a code, call again.

No HTTP here: functions take plain values (what was typed, the client IP, the
verification id from the session) and return plain results or raise a
`Refusal`. Every decision, allowed or refused, writes one attempts row, and
the row is committed before the function returns.

No database transaction is held open while the provider is called: the
provider can take seconds, and SQLite has a single writer. Each verb takes its
verification's turn and loads it here; its parts do the rest (webapp.calls,
webapp.checks, webapp.resends), and none of them imports another verb.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import replace
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from webapp.attempt_writer import AttemptWriter
from webapp.attempts import AttemptLog, printable
from webapp.calls import Calls
from webapp.checks import Checks
from webapp.db import answers
from webapp.errors import Refusal
from webapp.guard import Guard
from webapp.leases import LeaseBusy, Leases
from webapp.models import Verification
from webapp.outbox import Outbox
from webapp.outcomes import Outcome
from webapp.phone import InvalidNumber, parse_phone
from webapp.progress import Pending, Verified
from webapp.provider import CallOptions
from webapp.provider.failover import Providers
from webapp.resends import Resends
from webapp.settings import Settings
from webapp.shown import Shown
from webapp.verifications import Verifications

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
        self._resends = Resends(guard, self._verifications, self._attempts, self._calls, self._shown, clock)
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
        return self._bound(self._attempts.for_client(client_id), self._options, self._api_client)

    def for_api(self, client_id: str, language: str | None = None) -> Flow:
        """This flow for a JSON API client: the verifications it starts are the client's, its rows say via "api".

        `language` replaces VERIFY_LANGUAGE for the calls this flow places.
        """
        options = self._options if language is None else replace(self._options, language=language)
        return self._bound(self._attempts.for_client(client_id, via="api"), options, client_id)

    def _bound(self, attempts: AttemptLog, options: CallOptions, api_client: str | None) -> Flow:
        """This flow with its parts writing to `attempts`, calling with `options`, for `api_client`."""
        bound = copy.copy(self)  # shares everything (sessions, providers, guard, leases, outbox) but those
        bound._attempts, bound._options, bound._api_client = attempts, options, api_client
        bound._calls = replace(self._calls, attempts=attempts, options=options)
        bound._checks = replace(self._checks, attempts=attempts, options=options)
        bound._resends = replace(self._resends, attempts=attempts, calls=bound._calls, api_client=api_client)
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
            return await self._resends.again(await self._load(verification_id, "resend", ip), ip)

    async def confirm(
        self, verification_id: str | None, raw_code: str, ip: str, for_call: str | None = None
    ) -> Verified:
        """Check a code; Verified only when the provider says "verified" for the call it was typed for.

        `for_call` is the call the code form was showing (`Pending.call`): a code
        typed for a call that "Call me again" has replaced is not checked.
        """
        async with self._turn(verification_id, "check", ip):
            return await self._checks.check(await self._load(verification_id, "check", ip), raw_code, ip, for_call)

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
