"""The async engine and sessionmaker, made by the app's lifespan.

A PostgreSQL engine pings a pooled connection before handing it out
(`pool_pre_ping`), so a backend that was terminated or restarted costs a
reconnect, not a failed request. A SQLite engine does not (there is no server
to lose; the file checks below stand in for it), and its connections take
turns to write (webapp.sqlite_writer) instead of fighting over SQLite's lock.

SQLite fails quietly where PostgreSQL would refuse: a database file deleted
under a running app is still written (into the unlinked file, lost at the
next restart), and opening a missing file creates an empty one. So the engine
an app serves from (`serving=True`) opens the file without creating it
(`mode=rw`) and, at each checkout, checks that the file at the path is still
the one it opened and is writable; when not, the checkout fails with
`DatabaseFileUnusable`, which the app answers like any database outage (503).
The check is a stat and an access(2) of a local file, microseconds: it runs
inline rather than costing each checkout a hop to a worker thread.
"""

from __future__ import annotations

import logging
import os
from typing import Any, cast
from urllib.parse import quote

import asyncpg
from sqlalchemy import event, text
from sqlalchemy.engine import URL, CursorResult, Result, make_url
from sqlalchemy.exc import DisconnectionError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from webapp import sqlite_driver
from webapp.sqlite_writer import WRITE_WAIT, serialize_writes

log = logging.getLogger(__name__)

#: What a database that is away raises: SQLAlchemy's errors, and what the driver
#: raises unwrapped while connecting (asyncpg: ConnectionRefusedError, or its own
#: errors when the server ends the connection during SQLAlchemy's set-up of it).
STORAGE_ERRORS: tuple[type[BaseException], ...] = (
    SQLAlchemyError,
    OSError,
    asyncpg.InterfaceError,
    asyncpg.PostgresError,
)


class DatabaseFileUnusable(SQLAlchemyError):
    """The SQLite file is gone from its path, or can no longer be written."""


def create_engine(url: str, *, serving: bool = False, write_wait: float = WRITE_WAIT, **kwargs: Any) -> AsyncEngine:
    """An async engine; SQLite in WAL mode with foreign keys, a busy timeout and one writer at a time.

    Query parameters stay out of error messages and the engine's log lines:
    they hold phone numbers. `serving`: the engine of a running app; on SQLite its file must exist and
    stay the file first opened, and writable (see the module docstring). `write_wait`: seconds a
    SQLite write waits for its turn before it fails with WriterBusy (a 503).
    """
    parsed = make_url(url)
    sqlite = parsed.get_backend_name() == "sqlite"
    path = _sqlite_file(parsed) if serving else None
    if path is not None:
        # The URI form lets SQLite refuse to create the file (mode=rw).
        parsed = parsed.set(database=f"file:{quote(path)}", query={"uri": "true", "mode": "rw"})
    if not sqlite:
        kwargs.setdefault("pool_pre_ping", True)
    elif parsed.get_driver_name() == "aiosqlite":
        kwargs.setdefault("module", sqlite_driver.dbapi())  # one trip to aiosqlite's thread per statement
    engine = create_async_engine(parsed, hide_parameters=True, **kwargs)
    if sqlite:
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        serialize_writes(engine, write_wait)
    if path is not None:
        _watch_file(engine, path)
    return engine


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers run beside the one writer; busy_timeout makes a second
    # writer (another worker process) wait instead of failing at once; within
    # this process writers take turns before they reach SQLite's lock.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


async def answers(sessionmaker: async_sessionmaker[AsyncSession]) -> bool:
    """The database answers a trivial query (and, on SQLite, its file is there and writable): /healthz."""
    try:
        async with sessionmaker() as session:
            await session.execute(text("SELECT 1"))
    except STORAGE_ERRORS as exc:
        log.error("health check: the database does not answer: %s", type(exc).__name__)
        return False
    return True


def affected(result: Result[Any]) -> int:
    """How many rows an UPDATE or DELETE matched."""
    # Session.execute is typed as returning Result; for these statements it is a CursorResult.
    return cast("CursorResult[Any]", result).rowcount


def _sqlite_file(url: URL) -> str | None:
    """The absolute path of a SQLite database file, or None (not SQLite, in memory, already a URI)."""
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:") or url.query:
        return None
    return os.path.abspath(url.database)


def _file_state(path: str) -> tuple[tuple[int, int] | None, bool]:
    """(device, inode) of the file at `path` (None when there is none), and whether it can be written."""
    try:
        found = os.stat(path)
    except FileNotFoundError:
        return None, False
    # os.access, not the mode bits: it also says no to root for an immutable
    # file or a read-only mount, where the mode bits would not.
    return (found.st_dev, found.st_ino), os.access(path, os.W_OK)


def _watch_file(engine: AsyncEngine, path: str) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def remember(_dbapi_connection: Any, record: Any) -> None:
        record.info["sqlite_file"] = _file_state(path)[0]

    @event.listens_for(engine.sync_engine, "checkout")
    def check(_dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        identity, writable = _file_state(path)
        if identity is None:
            raise DatabaseFileUnusable(f"the SQLite database file {path} is gone")
        if identity != record.info.get("sqlite_file"):
            # Another file is at the path now (restored, replaced): reconnect to it.
            raise DisconnectionError(f"the SQLite database file {path} was replaced")
        if not writable:
            raise DatabaseFileUnusable(f"the SQLite database file {path} is read-only")
