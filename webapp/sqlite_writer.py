"""One writer at a time on a SQLite file, within the process.

SQLite has one write lock per file. Pooled connections that write at once
each try to take it, and the losers sleep in SQLite's busy handler (1, 2, 5,
10 … 100 ms, then again), whatever became of the lock meanwhile: under load
those sleeps were the seconds of p99. So the engine's connections queue here
instead, in order, on the event loop: a transaction takes the turn at its
first write statement and gives it back when its connection returns to the
pool (after its commit or rollback); reads never wait (WAL lets them run
beside the writer).

Other processes on the same file still meet at SQLite's lock, and its busy
handler: that is why several processes want PostgreSQL (README).

A write that waits longer than `wait` seconds for its turn fails with
`WriterBusy`, a storage error the app answers with a 503, rather than
holding the request for ever behind a writer that does not finish.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from sqlalchemy import event
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import await_only

#: Seconds a write waits for this process's SQLite writer before giving up (503).
WRITE_WAIT = 10.0

#: Statements that never write; anything else takes the turn (DDL, savepoints included).
_READS = frozenset({"SELECT", "PRAGMA", "EXPLAIN"})


class WriterBusy(SQLAlchemyError):
    """The SQLite file's writer stayed busy for longer than the wait allowed."""


class Writer:
    """A first-come, first-served turn for the engine's connections; the holder is a pool entry."""

    def __init__(self, wait: float = WRITE_WAIT) -> None:
        self._wait = wait
        #: the pool entry's record_info of the connection whose turn it is (None: free)
        self._holder: dict[Any, Any] | None = None
        self._waiters: deque[tuple[asyncio.Future[None], dict[Any, Any]]] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def busy(self) -> bool:
        return self._holder is not None

    def take(self, holder: dict[Any, Any]) -> None:
        """Make it `holder`'s turn; from SQLAlchemy's greenlet (a cursor event), awaiting if another has it."""
        if self._holder is holder:
            return
        self._loop = asyncio.get_running_loop()
        if self._holder is None:
            self._holder = holder  # the common case: no greenlet switch, no future
            return
        await_only(self._queue(holder))

    async def _queue(self, holder: dict[Any, Any]) -> None:
        turn = asyncio.get_running_loop().create_future()
        self._waiters.append((turn, holder))
        try:
            async with asyncio.timeout(self._wait):
                await turn
        except BaseException as exc:
            if turn.done() and not turn.cancelled():
                self.give_back(holder)  # handed the turn just as we stopped waiting: pass it on
            else:
                turn.cancel()  # give_back skips it
            if isinstance(exc, TimeoutError):
                raise WriterBusy(f"the SQLite writer stayed busy for more than {self._wait:g} s") from None
            raise

    def give_back(self, holder: dict[Any, Any]) -> None:
        """End `holder`'s turn, if it is its turn, and hand it to the next in line."""
        if self._holder is not holder:
            return
        loop = self._loop
        if loop is not None and not loop.is_closed() and not _in_loop(loop):
            # A pool event run away from the loop (garbage collection, another thread): hand over there.
            loop.call_soon_threadsafe(self.give_back, holder)
            return
        while self._waiters:
            turn, waiting = self._waiters.popleft()
            if not turn.done():
                self._holder = waiting
                turn.set_result(None)
                return
        self._holder = None


def _in_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


def serialize_writes(engine: AsyncEngine, wait: float = WRITE_WAIT) -> Writer:
    """Make `engine`'s connections take turns to write; the Writer they queue on."""
    writer = Writer(wait)

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def before_write(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if writes(statement):
            writer.take(conn.connection.record_info)

    def end_turn(_dbapi_connection: Any, record: Any, *_args: Any) -> None:
        writer.give_back(record.record_info)

    # checkin: after the pool's reset (the rollback of whatever was left), so the turn ends with the transaction.
    event.listen(engine.sync_engine.pool, "checkin", end_turn)
    event.listen(engine.sync_engine.pool, "detach", end_turn)
    event.listen(engine.sync_engine.pool, "close", end_turn)
    return writer


def writes(statement: str) -> bool:
    """Whether a SQL statement may write (anything but a read: DDL and savepoints count as writes)."""
    words = statement[:40].split(None, 1)
    return bool(words) and words[0].upper() not in _READS
