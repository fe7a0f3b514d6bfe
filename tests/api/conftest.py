"""Fixtures for the JSON API: registered clients and HTTP clients that authenticate as them.

Clients are registered as `voice2fa client add` does (`webapp.oidc.clients.add`),
on the test's database; requests go through the app with its lifespan running.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.api.support import Registered, register
from tests.support import FakeClock


@pytest.fixture
async def shop(db: async_sessionmaker[AsyncSession], clock: FakeClock) -> Registered:
    """ "Example shop", a registered client."""
    return await register(db, clock, "Example shop")


@pytest.fixture
async def other(db: async_sessionmaker[AsyncSession], clock: FakeClock) -> Registered:
    """A second registered client."""
    return await register(db, clock, "Other site")


@pytest.fixture
def api_for(client_for: Callable[..., httpx.AsyncClient]) -> Callable[..., httpx.AsyncClient]:
    """HTTP clients for the API: `api_for(shop)`, from the backend's address 192.0.2.80 unless told."""

    def make(registered: Registered | None, ip: str = "192.0.2.80", **kwargs: Any) -> httpx.AsyncClient:
        if registered is not None:
            kwargs.setdefault("auth", registered.auth)
        return client_for(ip, **kwargs)

    return make


@pytest.fixture
async def api(api_for: Callable[..., httpx.AsyncClient], shop: Registered) -> AsyncIterator[httpx.AsyncClient]:
    """The shop's backend, authenticated."""
    async with api_for(shop) as client:
        yield client
