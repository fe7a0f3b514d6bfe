"""What the tests share: helpers, fakes and constants (the fixtures are in conftest.py).

Test modules import from here, never from conftest.py or from each other.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from html import unescape
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import uvicorn
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.applications import Starlette
from starlette.types import ASGIApp

from webapp import csrf
from webapp.db import create_engine
from webapp.models import Attempt, Verification
from webapp.passwords import hash_password

REQUIRE_SERVICES = os.environ.get("VOICE2FA_REQUIRE_SERVICES") == "1"

#: The console script of this environment, for tests that run `voice2fa` as a real process.
VOICE2FA = Path(sys.executable).with_name("voice2fa")

#: The operators' test password; hashed once here, since scrypt is slow on purpose.
OPERATOR = ("admin", "operator-test-password")
OPERATOR_HASH = hash_password(OPERATOR[1])


def require(available: bool, reason: str) -> None:
    """Skip with `reason` when a service is absent, or fail where it must be there."""
    if available:
        return
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} (VOICE2FA_REQUIRE_SERVICES=1 makes this a failure)")
    pytest.skip(reason)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any voice2fa setting, plus `extra`."""
    names = (
        "MESSAGEBIRD_",
        "TWILIO_",
        "PROVIDER",
        "DATABASE_URL",
        "SECRET_KEY",
        "VERIFY_",
        "RATELIMIT_",
        "TRUSTED_PROXIES",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(names)}
    env.update(extra)
    return env


def wait_until_up(url: str, process: subprocess.Popen[bytes], seconds: float = 20.0) -> None:
    """Poll `url` until it answers; fail if the process exits or `seconds` pass."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the server exited with {process.returncode}")
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not answer within {seconds} s")


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it has not ended after 10 s."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class FakeClock:
    """A clock tests move by hand instead of sleeping."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 11, 26, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


Handler = Callable[[httpx.Request], httpx.Response]


class FarSide:
    """A MockTransport handler that answers with `respond` and keeps every request."""

    def __init__(self, respond: Handler) -> None:
        self.respond = respond
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.respond(request)


def always(status_code: int, **kwargs: Any) -> Handler:
    """A handler that gives every request the same answer."""
    return lambda request: httpx.Response(status_code, **kwargs)


@contextmanager
def served_in_thread(app: ASGIApp, *, lifespan: str = "off", seconds: float = 10, port: int = 0) -> Iterator[str]:
    """`app` served by uvicorn on a free loopback port, in a thread of its own; its base URL.

    `lifespan="on"` runs the app's lifespan too; `seconds` bounds the start and the stop.
    `port` is for an app that must know its address before it is served (from `free_port()`).
    """
    # Bind first and hand uvicorn the socket: the port is ours, with no race.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", port))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan=lifespan))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + seconds
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=seconds)
        sock.close()
        assert not thread.is_alive(), "uvicorn did not stop"


POSTGRES_SERVER = "127.0.0.1:5432"  # trust auth, user postgres
POSTGRES = f"postgresql://postgres@{POSTGRES_SERVER}"
POSTGRES_ADMIN_DATABASE = "test"  # where CREATE/DROP DATABASE are sent from


def postgres_url(database: str) -> str:
    """The app's (SQLAlchemy) URL of a database on the test server."""
    return f"postgresql+asyncpg://postgres@{POSTGRES_SERVER}/{database}"


def on_own_loop(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """Run `coroutine` to its end from sync code, on an event loop of its own."""
    # Sync fixtures run beside pytest-asyncio's per-test loop; asyncio.run on
    # this thread would replace (and then unset) that loop, so use another one.
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


async def _postgres(*statements: str) -> None:
    connection = await asyncpg.connect(f"{POSTGRES}/{POSTGRES_ADMIN_DATABASE}", timeout=3)
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


async def _execute(database_url: str, statements: tuple[str, ...]) -> None:
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            for statement in statements:
                await connection.exec_driver_sql(statement)
    finally:
        await engine.dispose()


def execute_sql(database_url: str, *statements: str) -> None:
    """Run SQL statements on a test's database, in one transaction, from sync code."""
    on_own_loop(_execute(database_url, statements))


def postgres_admin(*statements: str) -> None:
    """Run statements (CREATE/DROP DATABASE) on the test server's admin database."""
    on_own_loop(_postgres(*statements))


def postgres_ping() -> None:
    """Raise unless PostgreSQL answers on POSTGRES_SERVER."""
    on_own_loop(_postgres("SELECT 1"))


@contextmanager
def postgres_database(prefix: str, template: str | None = None) -> Iterator[str]:
    """A new database on the test server, empty or cloned from `template`, dropped afterwards; its name."""
    name = f"{prefix}_{secrets.token_hex(6)}"
    postgres_admin(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    try:
        yield name
    finally:
        postgres_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class PostgresClones:
    """Fresh clones of a template database, made ahead of the tests that take them.

    CREATE DATABASE ... TEMPLATE waits on the server's disk (0.2 to 0.5 s on a
    busy one) and DROP DATABASE too; a background thread makes the next clones
    while a test runs and drops the used ones behind it, so a test waits only
    when the server is slower than the tests. Each clone commits with
    synchronous_commit off: what a test reads is what was committed, only a
    crash of the server could lose it, and no test crashes the server.
    """

    def __init__(self, template: str, prefix: str = "v2fa_t", ahead: int = 2) -> None:
        self._template, self._prefix = template, prefix
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="postgres-clones")
        self._ready: deque[Future[str]] = deque(self._worker.submit(self._create) for _ in range(ahead))

    def _create(self) -> str:
        name = f"{self._prefix}_{secrets.token_hex(6)}"
        postgres_admin(
            f'CREATE DATABASE "{name}" TEMPLATE "{self._template}"',
            f'ALTER DATABASE "{name}" SET synchronous_commit = off',
        )
        return name

    def take(self) -> str:
        """A fresh clone, this test's alone; give it back with `drop`."""
        name = self._ready.popleft().result()
        self._ready.append(self._worker.submit(self._create))
        return name

    def drop(self, name: str) -> None:
        """Drop the clone behind the tests (connections still open to it are ended)."""
        self._worker.submit(postgres_admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def close(self) -> None:
        """Drop the clones made ahead and wait for every drop."""
        for ready in self._ready:
            self.drop(ready.result())
        self._worker.shutdown(wait=True)


async def terminate_backends(database_url: str) -> None:
    """End every server process connected to this PostgreSQL database, as a restart or failover would."""
    database = make_url(database_url).database
    await _postgres(
        f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity "  # noqa: S608 - the test's own database
        f"WHERE datname = '{database}' AND pid <> pg_backend_pid()"
    )


async def allow_connections(database_url: str, allowed: bool) -> None:
    """Let the PostgreSQL database take connections, or refuse them all (and end those it has)."""
    database = make_url(database_url).database
    await _postgres(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS {str(allowed).lower()}')
    if not allowed:
        await terminate_backends(database_url)


async def attempts(db: async_sessionmaker[AsyncSession]) -> list[Attempt]:
    """Every attempts row, oldest first."""
    async with db() as session:
        return list((await session.scalars(select(Attempt).order_by(Attempt.id))).all())


def spoken_code(app: Any) -> str:
    """The code the embedded sandbox read out in its newest call."""
    return app.state.sandbox.calls()[0]["token"]


async def call_me(client: httpx.AsyncClient, phone: str = "06 12345678", country: str = "NL") -> httpx.Response:
    """Post the phone form."""
    return await client.post("/verify", data={"country": country, "phone": phone})


async def verifications(db: async_sessionmaker[AsyncSession]) -> list[Verification]:
    async with db() as session:
        return list((await session.scalars(select(Verification).order_by(Verification.created_at))).all())


#: Valid Dutch mobile numbers, +31 6 12000100 … +31 6 12000159: all in one range of 10,000.
NL_MOBILES = [f"+316120{n:05d}" for n in range(100, 160)]


def calls_placed(app: Starlette) -> int:
    """How many calls the embedded sandbox placed."""
    return len(app.state.sandbox.calls())


async def start_call(client: httpx.AsyncClient, phone: str, country: str = "NL") -> httpx.Response:
    """Ask for a call to `phone`, as the page's htmx form does."""
    return await client.post("/verify", data={"country": country, "phone": phone}, headers={"HX-Request": "true"})


async def outcomes(db: async_sessionmaker[AsyncSession]) -> list[str]:
    """The outcome of every request the attempts log accounts for, oldest first: a folded row counts `count` times."""
    return [row.outcome for row in await attempts(db) for _ in range(row.count)]


# -- the operators' pages ------------------------------------------------------------------------


def row(
    clock: FakeClock,
    seconds_ago: float,
    *,
    latency: int,
    number: str | None = "+31612345678",
    outcome: str = "sent",
    ip: str = "198.51.100.1",
    kind: str = "start",
    region: str | None = "NL",
    raw_input: str | None = None,
) -> Attempt:
    """An attempts row; `latency` doubles as a unique tag to find it in the HTML."""
    return Attempt(
        created_at=clock.now - timedelta(seconds=seconds_ago),
        kind=kind,
        number=number,
        raw_input=raw_input,
        region=region,
        ip=ip,
        channel="tts",
        outcome=outcome,
        provider_latency_ms=latency,
    )


async def seed(db: async_sessionmaker[AsyncSession], rows: list[Attempt]) -> None:
    """Insert `rows` into the test's database."""
    async with db() as session:
        session.add_all(rows)
        await session.commit()


def text_of(html: str) -> str:
    """What the page says, without tags, whitespace folded."""
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def token_in(html: str) -> str:
    """The form token in a page's form."""
    found = re.search(rf'name="{csrf.FIELD}" value="([^"]+)"', html)
    assert found, "the page's form has no form token"
    return found.group(1)


async def form_token(operator: httpx.AsyncClient) -> str:
    """The form token of the operator's session, read from the deny form as a browser would see it."""
    return token_in((await operator.get("/admin/deny?action=deny")).text)


async def post_action(operator: httpx.AsyncClient, **fields: str) -> httpx.Response:
    """POST /admin/deny with `fields`, as the confirmation page's form does (form token included)."""
    return await operator.post("/admin/deny", data={csrf.FIELD: await form_token(operator), **fields})


class Outage:
    """Takes the test's database away and brings it back."""

    def __init__(self, database_url: str) -> None:
        self.url = database_url
        self.postgres = database_url.startswith("postgresql")
        self.path = None if self.postgres else Path(make_url(database_url).database or "")
        self.away = False

    async def begin(self) -> None:
        """PostgreSQL refuses every connection; SQLite's file is moved from its path."""
        self.away = True
        if self.postgres:
            await allow_connections(self.url, False)
        else:
            assert self.path is not None
            self.path.rename(self.path.with_suffix(".away"))

    async def end(self) -> None:
        if not self.away:
            return
        self.away = False
        if self.postgres:
            await allow_connections(self.url, True)
        else:
            assert self.path is not None
            self.path.with_suffix(".away").rename(self.path)
