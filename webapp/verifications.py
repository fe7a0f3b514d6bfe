"""The verifications table, as the flow reads and changes it.

One live (pending) verification per number is held by the database itself, a
partial unique index, so that concurrent starts in several processes cannot
both call. Each public method is its own short transaction, which this module
opens and commits (with the attempts row of the change, where the caller gives
one): none is held open while the provider is called, because that can take
seconds and SQLite has a single writer. The conditional UPDATEs these
transactions run, the changes that race, are webapp.verification_updates.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from webapp import verification_updates as updates
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
        """Write down the call `verification` is now on, with `row(state)`; the state (see `updates.record_call`)."""
        return await self._change(lambda session: updates.record_call(session, verification), row)

    async def mark_verified(self, verification: Verification, now: datetime, row: RowFor[bool]) -> bool:
        """Set verified, with `row(first)`; True if this call did it (see `updates.mark_verified`)."""
        return await self._change(lambda session: updates.mark_verified(session, verification, now), row)

    async def close(
        self, verification: Verification, status: str, row: RowFor[str], *, on_call: str | None = None
    ) -> str:
        """Close a pending verification as `status`, with `row(status afterwards)`; the status afterwards."""
        return await self._change(lambda session: updates.close(session, verification, status, on_call=on_call), row)

    async def count_wrong_code(self, verification: Verification, limit: int, row: RowFor[str]) -> str:
        """Count a wrong code (see `updates.count_wrong_code`), with `row(status afterwards)`; the status afterwards."""
        return await self._change(lambda session: updates.count_wrong_code(session, verification, limit), row)

    async def _change(self, change: Callable[[AsyncSession], Awaitable[T]], row: RowFor[T]) -> T:
        """One transaction: `change`, with the attempts row `row(what it found)`, committed; what it found."""
        async with self._sessions() as session:
            found = await change(session)
            _add(session, row(found))
            await session.commit()
        return found

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
