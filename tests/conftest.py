"""Fixtures: a real SQLite file made by Alembic, the app with its lifespan, a client per IP.

Set VOICE2FA_REQUIRE_SERVICES=1 (.ci/run does) to turn "service absent" skips
into failures: on the machines that have Chromium, PostgreSQL and Redis, those
tests must run.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import limits.storage.memory
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.applications import Starlette
from starlette.types import ASGIApp

from webapp.app import create_app
from webapp.db import create_engine, create_sessionmaker
from webapp.migrate import upgrade
from webapp.models import Attempt, Verification
from webapp.provider import CallOptions
from webapp.settings import Settings

REQUIRE_SERVICES = os.environ.get("VOICE2FA_REQUIRE_SERVICES") == "1"


def require(available: bool, reason: str) -> None:
    """Skip with `reason` when a service is absent, or fail where it must be there."""
    if available:
        return
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} (VOICE2FA_REQUIRE_SERVICES=1 makes this a failure)")
    pytest.skip(reason)


class FakeClock:
    """A clock tests move by hand instead of sleeping."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file brought to head by Alembic once; each test copies it."""
    path = tmp_path_factory.mktemp("schema") / "template.db"
    upgrade(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture
def database_url(tmp_path: Path, migrated_template: Path) -> str:
    """A fresh, migrated SQLite file for this test."""
    path = tmp_path / "voice2fa.db"
    shutil.copy(migrated_template, path)
    return f"sqlite+aiosqlite:///{path}"


class _FakeTimeModule:
    """Stands in for the `time` module inside limits' memory storage."""

    def __init__(self, clock: FakeClock) -> None:
        self._clock = clock

    def time(self) -> float:
        return self._clock.now.timestamp()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """The one clock of the test: the app, the sandbox and the rate-limit counters follow it."""
    fake = FakeClock()
    monkeypatch.setattr(limits.storage.memory, "time", _FakeTimeModule(fake))
    return fake


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
        return httpx.AsyncClient(transport=transport, base_url="http://testserver", **kwargs)  # type: ignore[arg-type]

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


async def attempts(db: async_sessionmaker[AsyncSession]) -> list[Attempt]:
    """Every attempts row, oldest first."""
    async with db() as session:
        return list((await session.scalars(select(Attempt).order_by(Attempt.id))).all())


async def verifications(db: async_sessionmaker[AsyncSession]) -> list[Verification]:
    async with db() as session:
        return list((await session.scalars(select(Verification).order_by(Verification.created_at))).all())
