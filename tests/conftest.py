"""Fixtures: a real database made by Alembic, the app with its lifespan, a client per IP.

Every test that uses the database (`database_url`, and through it `settings`,
`app`, `client`, `db`) runs twice: on a SQLite file and on PostgreSQL
(127.0.0.1:5432, trust auth; skipped with the reason where none answers).

The folders add their own: browser/conftest.py the served app and Chromium
(its tests marked `browser`), processes/conftest.py real `voice2fa` processes
(marked `slow`), and api/ and oidc/ their clients. Helpers are in the
support.py beside each conftest.py, and shared ones in tests/support.py.

Set VOICE2FA_REQUIRE_SERVICES=1 (.ci/run does) to turn "service absent" skips
into failures: on the machines that have Chromium, PostgreSQL and Redis, those
tests must run.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.applications import Starlette
from starlette.datastructures import Secret
from starlette.types import ASGIApp

from tests.support import (
    OPERATOR,
    OPERATOR_HASH,
    POSTGRES_SERVER,
    FakeClock,
    PostgresClones,
    postgres_database,
    postgres_ping,
    postgres_url,
    require,
)
from webapp.app import create_app
from webapp.db import create_engine, create_sessionmaker
from webapp.migrate import upgrade
from webapp.provider import CallOptions
from webapp.settings import Settings


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file brought to head by Alembic once; each test copies it."""
    path = tmp_path_factory.mktemp("schema") / "template.db"
    upgrade(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_available() -> None:
    """PostgreSQL answers on POSTGRES_SERVER, or the test is skipped (asked once per run)."""
    try:
        postgres_ping()
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        require(False, f"PostgreSQL does not answer on {POSTGRES_SERVER} ({type(exc).__name__}: {exc})")


@pytest.fixture(scope="session")
def postgres_template(postgres_available: None) -> Iterator[str]:
    """A PostgreSQL database brought to head by Alembic once per run; each test clones it."""
    with postgres_database(f"v2fa_tpl_{os.getpid()}") as name:
        upgrade(postgres_url(name))
        yield name


@pytest.fixture(scope="session")
def postgres_clones(postgres_template: str) -> Iterator[PostgresClones]:
    """Clones of the template, made ahead in the background (see PostgresClones)."""
    clones = PostgresClones(postgres_template)
    yield clones
    clones.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, migrated database for this test: a copy of the SQLite template, or a PostgreSQL clone.

    PostgreSQL gets a whole database per test (CREATE DATABASE ... TEMPLATE, made
    ahead while other tests run: `PostgresClones`) rather than a rolled-back transaction: the
    app commits in its own sessions on the engine its lifespan makes, so there
    is no outer transaction to join, and tests should see real commits anyway.
    """
    if request.param == "sqlite":
        path = tmp_path / "voice2fa.db"
        shutil.copy(request.getfixturevalue("migrated_template"), path)
        yield f"sqlite+aiosqlite:///{path}"
        return
    clones: PostgresClones = request.getfixturevalue("postgres_clones")
    name = clones.take()
    try:
        yield postgres_url(name)
    finally:
        clones.drop(name)


@pytest.fixture
def clock() -> FakeClock:
    """The one clock of the test: the app, the sandbox and the in-memory rate-limit counters follow it."""
    return FakeClock()


@pytest.fixture
def settings_changes() -> dict[str, object]:
    """Settings a test changes: `@pytest.mark.parametrize("settings_changes", [{...}])`."""
    return {}


@pytest.fixture
def settings(database_url: str, settings_changes: dict[str, object]) -> Settings:
    """Sandbox-mode settings on this test's database, with the test's changes."""
    return Settings(
        database_url=database_url,
        secret_key=Settings().secret_key,
        call=CallOptions(max_attempts=3),
        resend_cooldown=30,
        provider_deadline=0.5,
        admin_password_hash=Secret(OPERATOR_HASH),
    ).replace(**settings_changes)


@pytest.fixture
async def running(settings: Settings, clock: FakeClock) -> AsyncIterator[tuple[Starlette, ASGIApp]]:
    """The app and, with its lifespan running, the ASGI callable to send requests to."""
    application = create_app(settings, clock=clock)
    async with LifespanManager(application) as manager:
        yield application, manager.app


@pytest.fixture
def app(running: tuple[Starlette, ASGIApp]) -> Starlette:
    """The app (its lifespan running); `app.state.sandbox` is the embedded sandbox."""
    return running[0]


@pytest.fixture
def client_for(running: tuple[Starlette, ASGIApp]) -> Callable[..., httpx.AsyncClient]:
    """Make clients, each from its own IP address: `client_for("198.51.100.7")`."""

    def make(ip: str = "203.0.113.10", **kwargs: object) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=running[1], client=(ip, 40000))
        kwargs.setdefault("base_url", "http://testserver")
        return httpx.AsyncClient(transport=transport, **kwargs)  # type: ignore[arg-type]

    return make


@pytest.fixture
async def client(client_for: Callable[..., httpx.AsyncClient]) -> AsyncIterator[httpx.AsyncClient]:
    """A plain browser without JavaScript, from 203.0.113.10."""
    async with client_for() as c:
        yield c


@pytest.fixture
async def htmx(client_for: Callable[..., httpx.AsyncClient]) -> AsyncIterator[httpx.AsyncClient]:
    """A browser with htmx: every request says HX-Request."""
    async with client_for(headers={"HX-Request": "true"}) as c:
        yield c


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """A sessionmaker on the test's database, to assert rows."""
    engine = create_engine(database_url)
    yield create_sessionmaker(engine)
    await engine.dispose()


@pytest.fixture
def operator(client_for: Callable[..., httpx.AsyncClient]) -> httpx.AsyncClient:
    """A client logged in as the operator, from 192.0.2.50."""
    return client_for("192.0.2.50", auth=OPERATOR)
