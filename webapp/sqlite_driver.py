"""aiosqlite, one trip to its thread per statement.

aiosqlite runs each call on the connection's own thread; SQLAlchemy's adapter
makes a statement four such calls (make a cursor, execute, fetch the rows,
close the cursor), each a wake-up of that thread and then of the event loop.
On a busy machine those wake-ups, not SQLite, are where a query's time goes
(a start runs nine statements). This adapter does the four in one call, and
skips the call for a commit or rollback with no transaction open. It
uses aiosqlite's `Connection._execute` (queue a function for the thread),
which its own methods are built on.

`create_engine` (webapp.db) passes `dbapi()` as the engine's module for every
`sqlite+aiosqlite` URL; server-side cursors (`stream`) keep the stock path.
"""

from __future__ import annotations

import collections
import sqlite3
from typing import Any

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.util import EMPTY_DICT
from sqlalchemy.util.concurrency import await_

Outcome = tuple[Any, int, Any, list[Any]]


def _run(connection: sqlite3.Connection, operation: str, parameters: Any, many: bool) -> Outcome:
    """On aiosqlite's thread: the statement, its rows, and what the cursor says of it."""
    cursor = connection.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        elif parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        rows = cursor.fetchall() if cursor.description else []
        return cursor.description, cursor.rowcount, cursor.lastrowid, rows
    finally:
        cursor.close()


class OneTripCursor(AsyncAdapt_aiosqlite_cursor):
    """A cursor whose every statement is one call on aiosqlite's thread, rows fetched in it."""

    __slots__ = ("_description", "_lastrowid", "_rowcount")

    def __init__(self, adapt_connection: Any) -> None:  # no cursor made ahead: one per statement, in the thread
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = None  # type: ignore[assignment]  # no aiosqlite cursor: statements run on their own one in the thread
        self._soft_closed_memoized = EMPTY_DICT
        self._rows = collections.deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: Any = None

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> Any:
        return self._lastrowid

    @property
    def arraysize(self) -> int:
        return 1

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        pass

    async def _async_soft_close(self) -> None:
        pass  # the rows are here already, and the cursor closed in the thread

    def close(self) -> None:
        self._rows.clear()

    def execute(self, operation: Any, parameters: Any = None) -> Any:
        try:
            await_(self._call(operation, parameters, False))
        except Exception as error:  # noqa: BLE001 - SQLAlchemy's adapter translates (and re-raises) whatever the driver raised
            self._adapt_connection._handle_exception(error)

    def executemany(self, operation: Any, seq_of_parameters: Any) -> Any:
        try:
            await_(self._call(operation, seq_of_parameters, True))
        except Exception as error:  # noqa: BLE001 - SQLAlchemy's adapter translates (and re-raises) whatever the driver raised
            self._adapt_connection._handle_exception(error)

    async def _call(self, operation: Any, parameters: Any, many: bool) -> None:
        async with self._adapt_connection._execute_mutex:
            connection = self._connection
            outcome = await connection._execute(_run, connection._conn, operation, parameters, many)
        self._description, self._rowcount, self._lastrowid, rows = outcome
        self._rows = collections.deque(rows)


class _Connection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ()
    _cursor_cls = OneTripCursor

    # sqlite3 itself makes commit and rollback no-ops outside a transaction, and it opens
    # one only for a write: a read's session ends without a trip to the thread.
    def rollback(self) -> None:
        if self._open():
            super().rollback()

    def commit(self) -> None:
        if self._open():
            super().commit()

    def _open(self) -> bool:
        raw = self._connection._connection
        return raw is not None and raw.in_transaction


class _DBAPI(AsyncAdapt_aiosqlite_dbapi):
    def connect(self, *arg: Any, **kw: Any) -> _Connection:
        adapted = super().connect(*arg, **kw)
        return _Connection(self, adapted._connection)


def dbapi() -> AsyncAdapt_aiosqlite_dbapi:
    """The module for `create_async_engine(..., module=...)`: SQLAlchemy's aiosqlite adapter, one trip per statement."""
    return _DBAPI(aiosqlite, sqlite3)
