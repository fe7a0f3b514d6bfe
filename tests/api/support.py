"""Helpers for the JSON API's tests: registered clients, requests, problem documents, a served app."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.types import ASGIApp

from tests.support import FakeClock
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
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        sock.close()
        assert not thread.is_alive(), "uvicorn did not stop"
