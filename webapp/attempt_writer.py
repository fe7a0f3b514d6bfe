"""Group commit for the attempts log, and a flood folded into one row.

Rows that stand alone (a refusal, a reused call: `AttemptLog.write`) go to one
writer task, owned by the app's lifespan. It commits whatever has arrived
while the previous batch was committing, in one transaction; each request
waits for its own batch's commit, so "the row is committed before the
response is sent" still holds, and a crash loses nothing that was answered.
Under load that is one commit for many requests instead of one each (and, on
SQLite, one turn of its single writer).

A flood is one row with a count: a refusal identical to one written less than
`fold_seconds` before (same kind, outcome, client address (its IPv6 network
as the limits count it), number or raw input, region, verification, site,
reason) adds one to that row's `count` instead of inserting a row of its own.
The row keeps the first request's time and address. Every request is still
accounted for: sum(count), not the number of rows. Allowed outcomes (a call
placed, a code verified, a hand-off's steps) are never folded; nor is anything
across processes, each of which folds its own.

When the writer is not running (before the lifespan starts it, after `stop`,
or for a log used outside the app), `write` commits its row itself.
"""

from __future__ import annotations

import logging
from collections import OrderedDict, defaultdict, deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import cast

import anyio
import anyio.abc
from sqlalchemy import Table, bindparam, update
from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from webapp.client_ip import limit_key
from webapp.db import STORAGE_ERRORS
from webapp.models import Attempt

log = logging.getLogger(__name__)

#: Seconds within which identical refusals are folded into one row (ATTEMPTS_FOLD_SECONDS).
FOLD_SECONDS = 60
#: Outcomes that are never folded: each is a step someone took, not a refusal.
UNFOLDED = frozenset(
    {
        "sent",
        "verified",
        "reused",
        "cancelled",
        "handoff_started",
        "code_issued",
        "token_issued",
        "handoff_cancelled",
    }
)
#: Rows of one transaction at most; more wait for the next.
MAX_BATCH = 500
#: Fold keys remembered at most: a flood from very many addresses forgets the oldest first.
MAX_FOLDS = 10_000
#: Seconds `stop` waits for the rows queued to be committed.
STOP_WAIT = 5.0

FoldKey = tuple[object, ...]

_ATTEMPTS = cast("Table", Attempt.__table__)
_ADD_COUNT = (
    update(_ATTEMPTS)
    .where(_ATTEMPTS.c.id == bindparam("folded_id"))
    .values(count=_ATTEMPTS.c.count + bindparam("more"))
)


class NotWritten(SQLAlchemyError):
    """The batch holding this row could not be committed (the database was away, or the writer stopped)."""


@dataclass
class _Batch:
    rows: list[Attempt] = field(default_factory=list)
    done: anyio.Event = field(default_factory=anyio.Event)
    #: what failed the whole batch
    error: BaseException | None = None
    #: what failed single rows, by their index (a batch that failed as a whole is retried row by row)
    errors: dict[int, BaseException] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Folded:
    id: int
    at: datetime


class AttemptWriter:
    """The one writer of the attempts rows that stand alone: batches, folds, commits."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        fold_seconds: int = FOLD_SECONDS,
        ipv6_prefix: int = 64,
        max_batch: int = MAX_BATCH,
    ) -> None:
        self._sessions = sessionmaker
        self._window = timedelta(seconds=fold_seconds)
        self._ipv6_prefix = ipv6_prefix
        self._max_batch = max_batch
        self._running = False
        self._open = _Batch()
        self._full: deque[_Batch] = deque()
        #: the batch being committed
        self._current: _Batch | None = None
        self._wake = anyio.Event()
        #: rows handed over and not yet committed (or failed)
        self._waiting = 0
        self._drained = anyio.Event()
        #: the row each fold key last inserted, oldest first
        self._folds: OrderedDict[FoldKey, _Folded] = OrderedDict()

    async def write(self, row: Attempt) -> None:
        """Commit `row`, or fold it into an identical refusal's row; returns once that is committed."""
        if not self._running:
            batch = _Batch([row])
            await self._commit(batch)
        else:
            batch = self._open
            batch.rows.append(row)
            if len(batch.rows) >= self._max_batch:
                self._full.append(batch)
                self._open = _Batch()
            self._waiting += 1
            self._wake.set()
            # A request that goes away stops waiting; its row stays in the batch and is written.
            await batch.done.wait()
        index = batch.rows.index(row) if batch.errors else 0
        error = batch.errors.get(index) or batch.error
        if error is None:
            return
        if isinstance(error, STORAGE_ERRORS):
            raise NotWritten(f"the attempts row was not written: {type(error).__name__}") from error
        raise error

    async def run(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Commit batches as rows arrive (the lifespan's task); rows still queued when it ends fail."""
        self._running = True
        task_status.started()
        try:
            while True:
                await self._wake.wait()
                self._wake = anyio.Event()
                while self._full or self._open.rows:
                    batch = self._full.popleft() if self._full else self._take_open()
                    self._current = batch
                    await self._commit(batch)
                    self._current = None
                    self._settle(batch)
        finally:
            self._running = False
            lost = [self._current, *self._full, self._open]
            self._current, self._open = None, _Batch()
            self._full.clear()
            for left in lost:
                if left is not None and left.rows and not left.done.is_set():
                    log.error("attempts log: %d rows may not be written, the writer stopped first", len(left.rows))
                    left.error = left.error or NotWritten("the attempts writer stopped")
                    self._settle(left)

    async def stop(self, wait: float = STOP_WAIT) -> None:
        """Graceful: new rows commit themselves, and the rows queued are committed (at most `wait` seconds)."""
        self._running = False
        with anyio.move_on_after(wait):
            while self._waiting:
                await self._drained.wait()
        if self._waiting:
            log.error("attempts log: %d rows still queued after %g s of shutdown", self._waiting, wait)

    # -- the parts ------------------------------------------------------------------------------

    def _take_open(self) -> _Batch:
        batch, self._open = self._open, _Batch()
        return batch

    def _settle(self, batch: _Batch) -> None:
        if batch.done.is_set():
            return
        batch.done.set()
        self._waiting = max(0, self._waiting - len(batch.rows))
        if not self._waiting:
            self._drained.set()
            self._drained = anyio.Event()

    async def _commit(self, batch: _Batch) -> None:
        """Write the batch in one transaction; if a row's data spoils it, each row alone."""
        try:
            await self._insert(batch.rows)
        except (IntegrityError, DataError) as exc:
            if len(batch.rows) == 1:
                batch.error = exc
                return
            for index, row in enumerate(batch.rows):
                try:
                    await self._insert([row])
                except Exception as single:  # noqa: BLE001 - each request hears of its own row's failure
                    batch.errors[index] = single
        except Exception as exc:  # noqa: BLE001 - every request of the batch hears of it
            batch.error = exc

    async def _insert(self, rows: list[Attempt]) -> None:
        """Insert the rows, folding refusals into their earlier twins; the fold keys remembered on commit."""
        inserts: list[Attempt] = []
        fresh: dict[FoldKey, Attempt] = {}
        more: defaultdict[int, int] = defaultdict(int)
        for row in rows:
            row.count = 1  # also when a failed batch is tried again row by row
            key = self._key(row)
            if key is None:
                inserts.append(row)
                continue
            known = self._folds.get(key)
            if known is not None and self._within(known.at, row.created_at):
                more[known.id] += 1
                continue
            twin = fresh.get(key)
            if twin is not None and self._within(twin.created_at, row.created_at):
                twin.count = (twin.count or 1) + 1
                continue
            inserts.append(row)
            fresh[key] = row
        async with self._sessions() as session:
            session.add_all(inserts)
            if more:
                await session.execute(_ADD_COUNT, [{"folded_id": row_id, "more": n} for row_id, n in more.items()])
            await session.commit()
        for key, row in fresh.items():
            self._folds[key] = _Folded(row.id, row.created_at)
            self._folds.move_to_end(key)
        self._forget(max((row.created_at for row in rows), default=None))

    def _key(self, row: Attempt) -> FoldKey | None:
        if not self._window or row.outcome in UNFOLDED:
            return None
        return (
            row.kind,
            row.outcome,
            limit_key(row.ip, self._ipv6_prefix),
            row.number,
            row.raw_input,
            row.region,
            row.channel,
            row.verification_id,
            row.provider_ref,
            row.provider_latency_ms,
            row.client_id,
            row.reason,
            row.provider,
            row.via,
        )

    def _within(self, first: datetime, then: datetime) -> bool:
        return first <= then < first + self._window

    def _forget(self, now: datetime | None) -> None:
        while self._folds and (
            len(self._folds) > MAX_FOLDS
            or (now is not None and next(iter(self._folds.values())).at + self._window <= now)
        ):
            self._folds.popitem(last=False)
