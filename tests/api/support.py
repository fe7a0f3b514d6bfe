"""Helpers for the JSON API's tests: registered clients, requests, problem documents, a served app."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.types import ASGIApp

from tests.support import FakeClock, served_in_thread
from webapp.db import create_engine, create_sessionmaker
from webapp.oidc import clients

NUMBER = "+31612345678"
OTHER_NUMBER = "+31612345679"


@dataclass(frozen=True)
class Registered:
    client_id: str
    secret: str

    @property
    def auth(self) -> tuple[str, str]:
        return (self.client_id, self.secret)


async def register(db: async_sessionmaker[AsyncSession], clock: FakeClock, name: str) -> Registered:
    """Register a client as `voice2fa client add` does."""
    async with db() as session:
        credentials = await clients.add(session, name, ["https://shop.example/callback"], clock())
    return Registered(credentials.client_id, credentials.client_secret)


async def create(api: httpx.AsyncClient, number: str = NUMBER, **body: Any) -> httpx.Response:
    """POST /api/v1/verifications."""
    headers = body.pop("headers", None)
    return await api.post("/api/v1/verifications", json={"phone_number": number, **body}, headers=headers)


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The response is RFC 9457 problem details with this status and code; its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["code"] == code, body
    assert body["title"] and body["detail"] and body["type"].endswith("#" + code)
    return body


def register_now(database_url: str, clock: FakeClock, name: str) -> Registered:
    """`register`, from sync code (a fixture of a sync test), on a loop of its own."""

    async def work() -> Registered:
        engine = create_engine(database_url)
        try:
            return await register(create_sessionmaker(engine), clock, name)
        finally:
            await engine.dispose()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, work()).result()


@contextmanager
def served(app: ASGIApp) -> Iterator[str]:
    """`app` served by uvicorn, its lifespan included, on a free loopback port in a thread; its base URL."""
    with served_in_thread(app, lifespan="on", seconds=20) as url:
        yield url
