"""The verifications table, as the flow reads and changes it.

One live (pending) verification per number is held by the database itself, a
partial unique index, so that concurrent starts in several processes cannot
both call. Each public method is its own short transaction, which this module
opens and commits (with the attempts row of the change, where the caller gives
one): none is held open while the provider is called, because that can take
seconds and SQLite has a single writer.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from webapp.db import affected
from webapp.errors import Refusal
from webapp.models import Attempt, Verification
from webapp.outcomes import Outcome
from webapp.phone import PhoneNumber
from webapp.waits import seconds_until

T = TypeVar("T")

#: Builds the attempts row of a change from what the change found (None: no row).
RowFor = Callable[[T], Attempt | None]


class Verifications:
    """Read, claim and change verifications; a live one holds its number."""

    def __init__(
        self, sessionmaker: async_sessionmaker[AsyncSession], clock: Callable[[], datetime], timeout: int
    ) -> None:
        self._sessions = sessionmaker
        self._clock = clock
        #: seconds a new call's code is good for, on our side
        self._timeout = timeout

    async def get(self, verification_id: str | None) -> Verification | None:
        """The verification with this id, if there is one."""
        if not verification_id:
            return None
        async with self._sessions() as session:
            return await session.get(Verification, verification_id)

    async def live_until(self, e164: str) -> datetime | None:
        """When the code of the verification still live on this number runs out, if one is."""
        now = self._clock()
        async with self._sessions() as session:
            return await session.scalar(
                select(Verification.expires_at)
                .where(Verification.number == e164, Verification.status == "pending", Verification.expires_at > now)
                .limit(1)
            )

    async def reserve(self, number: PhoneNumber, ip: str, *, api_client: str | None = None) -> Verification:
        """Claim the number: the database lets one live verification per number exist.

        `api_client`: the JSON API client it is made for, which alone may see it there.
        """
        now = self._clock()
        verification = Verification(
            id=secrets.token_urlsafe(16),
            number=number.e164,
            country=number.region,
            channel="tts",
            provider_ref=None,
            status="pending",
            code_attempts=0,
            calls=1,
            ip=ip,
            created_at=now,
            last_call_at=now,
            expires_at=now + timedelta(seconds=self._timeout),
            api_client_id=api_client,
        )
        async with self._sessions() as session:
            # Insert first: a number is nearly always free, and then this is the one round trip.
            session.add(verification)
            try:
                await session.commit()
                return verification
            except IntegrityError:
                await session.rollback()
            # Held: by a live verification, or by one whose code has run out; expire those and try once more.
            if await _expire_stale(session, number.e164, now):
                session.add(verification)
                try:
                    await session.commit()
                    return verification
                except IntegrityError:  # another start took the number meanwhile
                    pass
            await session.rollback()
            raise self._busy_number(await _live_expiry(session, number.e164))

    async def reopen(self, verification: Verification) -> Verification:
        """A closed verification becomes live again for a new call, if its number is free."""
        now = self._clock()
        async with self._sessions() as session:
            await _expire_stale(session, verification.number, now)
            fresh = await _locked(session, verification)
            if fresh.status == "cancelled":  # given up on in another tab meanwhile
                raise Refusal(Outcome.NO_VERIFICATION)
            if fresh.status == "verified":
                raise Refusal(Outcome.ALREADY_VERIFIED)
            fresh.status = "pending"
            fresh.expires_at = now + timedelta(seconds=self._timeout)
            try:
                await session.commit()
            except IntegrityError:
                await session.rollback()
                raise self._busy_number(await _live_expiry(session, verification.number)) from None
        return fresh

    async def cancel(self, verification_id: str, log: Callable[[Verification], Attempt]) -> Verification | None:
        """Mark a pending verification cancelled, with its attempts row `log(row)`; the row, or None if none was pending."""
        async with self._sessions() as session:
            verification = await session.get(Verification, verification_id)
            if verification is None or verification.status != "pending":
                return None
            verification.status = "cancelled"
            session.add(log(verification))
            await session.commit()
        return verification

    # -- the transactions the flow's changes are: each commits the change with its attempts row

    async def record_call(self, verification: Verification, row: RowFor[str]) -> str:
        """Write down the call `verification` is now on, with `row(state)`; the state (see `_record_call`)."""
        async with self._sessions() as session:
            state = await self._record_call(session, verification)
            _add(session, row(state))
            await session.commit()
        return state

    async def mark_verified(self, verification: Verification, now: datetime, row: RowFor[bool]) -> bool:
        """Set verified, with `row(first)`; True if this call did it (see `_mark_verified`)."""
        async with self._sessions() as session:
            first = await self._mark_verified(session, verification, now)
            _add(session, row(first))
            await session.commit()
        return first

    async def close(
        self, verification: Verification, status: str, row: RowFor[str], *, on_call: str | None = None
    ) -> str:
        """Close a pending verification as `status`, with `row(status afterwards)`; the status afterwards."""
        async with self._sessions() as session:
            now_status = await self._close(session, verification, status, on_call=on_call)
            _add(session, row(now_status))
            await session.commit()
        return now_status

    async def count_wrong_code(self, verification: Verification, limit: int, row: RowFor[str]) -> str:
        """Count a wrong code (see `_count_wrong_code`), with `row(status afterwards)`; the status afterwards."""
        async with self._sessions() as session:
            status = await self._count_wrong_code(session, verification, limit)
            _add(session, row(status))
            await session.commit()
        return status

    # -- inside those transactions

    async def _record_call(self, session: AsyncSession, verification: Verification) -> str:
        """Write down the call `verification` is now on (its provider_ref, calls, expiry …).

        "recorded"; "recorded already" (an earlier try's commit went through,
        its answer was lost); or "gone": the verification was closed meanwhile
        (another tab), and it stays closed.
        """
        ref = verification.provider_ref
        result = await session.execute(
            update(Verification)
            .where(
                Verification.id == verification.id,
                Verification.status == "pending",
                or_(Verification.provider_ref.is_(None), Verification.provider_ref != ref),
            )
            .values(
                provider=verification.provider,
                provider_ref=ref,
                calls=verification.calls,
                code_attempts=verification.code_attempts,
                last_call_at=verification.last_call_at,
                expires_at=verification.expires_at,
            )
        )
        if affected(result):
            return "recorded"
        status = await session.scalar(select(Verification.status).where(Verification.id == verification.id))
        if status == "pending":
            return "recorded already"
        await _reread(session, verification, "cancelled")
        return "gone"

    # -- state changes that race: each is one conditional UPDATE, so that two
    # requests for one verification (a double click, two tabs, two workers)
    # cannot undo each other, on PostgreSQL and on SQLite alike. Those of a
    # check also hold only while the verification is on the call the check
    # read (its provider_ref): a newer call is not the check's to change.
    # Where the UPDATE finds nothing, the row is re-read into `verification`.

    async def _mark_verified(self, session: AsyncSession, verification: Verification, now: datetime) -> bool:
        """Set verified; True if this call did it (verified_at stays the first, never moves)."""
        result = await session.execute(
            update(Verification)
            .where(
                Verification.id == verification.id,
                Verification.status == "pending",
                Verification.provider_ref == verification.provider_ref,
            )
            .values(status="verified", verified_at=now)
        )
        if affected(result):
            verification.status, verification.verified_at = "verified", now
            return True
        await _reread(session, verification)
        return False

    async def _close(
        self, session: AsyncSession, verification: Verification, status: str, *, on_call: str | None = None
    ) -> str:
        """Close a pending verification as `status` (only while on call `on_call`, if given); the status afterwards."""
        values: dict[str, object] = {"status": status}
        if verification.provider_ref:
            values["provider_ref"] = verification.provider_ref
        if verification.provider:
            values["provider"] = verification.provider
        where = [Verification.id == verification.id, Verification.status == "pending"]
        if on_call is not None:
            where.append(Verification.provider_ref == on_call)
        result = await session.execute(update(Verification).where(*where).values(**values))
        if not affected(result):
            return await _reread(session, verification, status)
        verification.status = status
        return status

    async def _count_wrong_code(self, session: AsyncSession, verification: Verification, limit: int) -> str:
        """Count a wrong code on the call the check read, failing it at `limit`; the status afterwards."""
        ref = verification.provider_ref
        attempts = await session.scalar(
            update(Verification)
            .where(
                Verification.id == verification.id, Verification.status == "pending", Verification.provider_ref == ref
            )
            .values(code_attempts=Verification.code_attempts + 1)
            .returning(Verification.code_attempts)
        )
        if attempts is None:  # closed, verified or called again by a concurrent request
            return await _reread(session, verification)
        verification.code_attempts = attempts
        if attempts >= limit:
            return await self._close(session, verification, "failed", on_call=ref)
        return "pending"

    def _busy_number(self, expires_at: datetime | None) -> Refusal:
        wait = seconds_until(expires_at, self._clock()) if expires_at else self._timeout
        return Refusal(Outcome.BLOCKED_PENDING, retry_after=wait, field="phone")


def _add(session: AsyncSession, row: Attempt | None) -> None:
    if row is not None:
        session.add(row)


async def _locked(session: AsyncSession, verification: Verification) -> Verification:
    # Re-read the row for update: concurrent checks must not lose a wrong attempt.
    fresh = await session.get(Verification, verification.id, with_for_update=True, populate_existing=True)
    if fresh is None:
        raise Refusal(Outcome.NO_VERIFICATION)
    return fresh


async def _reread(session: AsyncSession, verification: Verification, default: str | None = None) -> str:
    # Another request changed the row: take it as it now stands; its status.
    row = (
        await session.execute(
            select(
                Verification.status,
                Verification.verified_at,
                Verification.provider_ref,
                Verification.calls,
                Verification.code_attempts,
            ).where(Verification.id == verification.id)
        )
    ).first()
    if row is not None:
        verification.status, verification.verified_at = row.status, row.verified_at
        verification.provider_ref, verification.calls, verification.code_attempts = (
            row.provider_ref,
            row.calls,
            row.code_attempts,
        )
    elif default is not None:
        verification.status = default
    return verification.status


async def _expire_stale(session: AsyncSession, e164: str, now: datetime) -> int:
    # A live verification whose code has run out no longer holds the number; how many there were.
    result = await session.execute(
        update(Verification)
        .where(Verification.number == e164, Verification.status == "pending", Verification.expires_at <= now)
        .values(status="expired")
    )
    return affected(result)


async def _live_expiry(session: AsyncSession, e164: str) -> datetime | None:
    return await session.scalar(
        select(Verification.expires_at).where(Verification.number == e164, Verification.status == "pending").limit(1)
    )
