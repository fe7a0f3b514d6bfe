"""Fixtures for the hand-off: registered clients, the provider, the site's server (helpers: support.py)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.oidc.support import SHOP_CALLBACK, Registered, register
from tests.support import FakeClock
from webapp.limits import RateLimits
from webapp.oidc.provider import Provider
from webapp.settings import Settings


@pytest.fixture
async def shop(db: async_sessionmaker[AsyncSession], clock: FakeClock) -> Registered:
    """ "Example shop", registered with one https redirect URI."""
    return await register(db, clock, "Example shop", SHOP_CALLBACK)


@pytest.fixture
async def other_site(db: async_sessionmaker[AsyncSession], clock: FakeClock) -> Registered:
    """A second client, on a loopback redirect URI."""
    return await register(db, clock, "Other site", "http://127.0.0.1:5000/cb")


@pytest.fixture
def provider(settings: Settings, db: async_sessionmaker[AsyncSession], clock: FakeClock) -> Provider:
    """A provider on the test's database, as another worker of the app would have it."""
    return Provider(
        settings,
        db,
        clock,
        RateLimits("memory://", key_prefix=f"t{secrets.token_hex(4)}", now=lambda: clock().timestamp()),
    )


@pytest.fixture
async def site_server(client_for: Callable[..., httpx.AsyncClient]) -> AsyncIterator[httpx.AsyncClient]:
    """The client site's server calling the token endpoint, from its own address."""
    async with client_for("198.51.100.20") as c:
        yield c
