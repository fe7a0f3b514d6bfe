"""Leases: the requests on one verification (check, "Call me again", cancel) take turns.

Each of them reads the verification, talks to the provider (seconds, at
worst), then changes the row; two at once undo each other (a check closing
the call a resend has just placed). No transaction may stay open across the
provider call (SQLite has one writer), so the turn is a short lease on the
row, taken by a conditional UPDATE of `busy_until` / `busy_by`: that works
across processes, on PostgreSQL and SQLite alike. In front of it, a lock per
verification lets the requests of one process queue without polling the
database. A lease whose process died runs out by itself.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import anyio
from sqlalchemy import or_, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from webapp.db import affected
from webapp.errors import Voice2faError
from webapp.models import Verification

log = logging.getLogger(__name__)


class LeaseBusy(Voice2faError):
    """Another process held the verification for longer than we would wait."""


@dataclass
class _Queue:
    lock: anyio.Lock = field(default_factory=anyio.Lock)
    users: int = 0


class Leases:
    """Turns on verifications, within this process and across processes."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        clock: Callable[[], datetime],
        *,
        duration: float,
        wait: float | None = None,
    ) -> None:
        self._sessions = sessionmaker
        self._clock = clock
        #: how long a lease holds if its holder never gives it back
        self._duration = timedelta(seconds=duration)
        #: how long to wait for another process's lease before giving up
        self._wait = duration if wait is None else wait
        #: this process's name on the leases it takes
        self.owner = secrets.token_hex(8)
        self._queues: dict[str, _Queue] = {}

    @asynccontextmanager
    async def hold(self, verification_id: str | None) -> AsyncIterator[None]:
        """The verification is ours for the block; LeaseBusy if another process keeps it too long."""
        if not verification_id:
            yield
            return
        queue = self._queues.setdefault(verification_id, _Queue())
        queue.users += 1
        try:
            async with queue.lock:
                await self._take(verification_id)
                try:
                    yield
                finally:
                    with anyio.CancelScope(shield=True):
                        await self._give_back(verification_id)
        finally:
            queue.users -= 1
            if not queue.users:
                del self._queues[verification_id]

    async def _take(self, verification_id: str) -> None:
        give_up = anyio.current_time() + self._wait
        pause = 0.01
        while True:
            now = self._clock()
            async with self._sessions() as session:
                taken = await session.execute(
                    update(Verification)
                    .where(
                        Verification.id == verification_id,
                        # Ours already: a lease this process could not give back
                        # (the database was away); the lock above makes it safe to reuse.
                        or_(
                            Verification.busy_until.is_(None),
                            Verification.busy_until <= now,
                            Verification.busy_by == self.owner,
                        ),
                    )
                    .values(busy_until=now + self._duration, busy_by=self.owner)
                )
                if affected(taken):
                    await session.commit()
                    return
                exists = await session.scalar(select(Verification.id).where(Verification.id == verification_id))
            if exists is None:
                return  # nothing to hold: the flow answers "no verification"
            if anyio.current_time() >= give_up:
                raise LeaseBusy(verification_id)
            await anyio.sleep(pause)
            pause = min(pause * 2, 0.2)

    async def _give_back(self, verification_id: str) -> None:
        try:
            async with self._sessions() as session:
                await session.execute(
                    update(Verification)
                    .where(Verification.id == verification_id, Verification.busy_by == self.owner)
                    .values(busy_until=None, busy_by=None)
                )
                await session.commit()
        except (SQLAlchemyError, OSError) as exc:
            # The request's own work is done; the lease runs out by itself, and
            # this process takes its own lease back on the next request.
            log.warning("could not give back the lease on verification %s: %s", verification_id, type(exc).__name__)
