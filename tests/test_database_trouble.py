"""The database going away: a 503 with a message, never a bare 500, and no call placed goes unrecorded.

"Away" is real: on PostgreSQL the app's server processes are terminated
(`pg_terminate_backend`) or the database refuses connections; on SQLite the
file is moved, deleted or made immutable (`chattr +i`, which stops root too:
the tests run as root, whom file modes do not stop).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from html import unescape
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import select, update
from sqlalchemy.engine import make_url

from tests.support import (
    OPERATOR,
    FakeClock,
    Outage,
    attempts,
    call_me,
    require,
    spoken_code,
    terminate_backends,
    verifications,
)
from webapp.app import create_app
from webapp.models import Attempt, Verification
from webapp.provider.sandbox import create_sandbox_app
from webapp.routes import STORAGE_DOWN

#: starts from many numbers and addresses in a row
MANY_STARTS = {
    "limit_start_per_ip": "1000/minute",
    "limit_calls_global": "1000/minute",
    "limit_calls_per_country": "1000/hour",
}


@pytest.fixture
async def outage(database_url: str) -> AsyncIterator[Outage]:
    """The database's outage, always ended by teardown."""
    trouble = Outage(database_url)
    yield trouble
    await trouble.end()


class HookedSandbox(httpx.AsyncBaseTransport):
    """The app's own sandbox; `after_create` runs once the sandbox has placed a call, before the app hears of it."""

    def __init__(self) -> None:
        self.app: object = None
        self.after_create: Callable[[], Awaitable[None]] | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        sandbox = httpx.ASGITransport(app=create_sandbox_app(self.app.state.sandbox))  # type: ignore[attr-defined]
        response = await sandbox.handle_async_request(request)
        if request.method == "POST" and self.after_create is not None:
            await response.aread()
            await self.after_create()
        return response


@pytest.fixture
async def hooked(settings, clock: FakeClock):
    """An app whose sandbox can pull the database away right after placing a call; (app, hook, client maker)."""
    hook = HookedSandbox()
    application = create_app(settings, clock=clock, provider_transport=hook)
    hook.app = application
    async with LifespanManager(application) as manager:

        def client(ip: str = "203.0.113.10", **kwargs: object) -> httpx.AsyncClient:
            transport = httpx.ASGITransport(app=manager.app, client=(ip, 40000))
            return httpx.AsyncClient(transport=transport, base_url="http://testserver", **kwargs)  # type: ignore[arg-type]

        yield application, hook, client


async def until_recorded(client: httpx.AsyncClient) -> dict[str, object]:
    """/healthz once the outbox has written down every call placed (bounded)."""
    for _ in range(200):
        health = (await client.get("/healthz")).json()
        if health["unrecorded_calls"] == 0:
            return health
        await asyncio.sleep(0.05)
    pytest.fail(f"calls still unrecorded: {health}")


#: for what only PostgreSQL has (server processes) or only SQLite (a file)
ON_POSTGRESQL = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
ON_SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


# -- PostgreSQL server processes terminated -----------------------------------------------


@ON_POSTGRESQL
async def test_server_processes_terminated_between_requests_cost_no_request(
    database_url: str, htmx: httpx.AsyncClient, app: object, db
) -> None:
    await call_me(htmx)
    await terminate_backends(database_url)  # every pooled connection is dead now
    response = await htmx.post("/confirm", data={"code": spoken_code(app), "call": "1"})
    assert response.status_code == 200 and "is verified" in response.text


@ON_POSTGRESQL
async def test_server_processes_terminated_while_the_call_is_placed_still_record_it(
    database_url: str, hooked, db
) -> None:
    application, hook, client = hooked
    hook.after_create = lambda: terminate_backends(database_url)
    async with client(headers={"HX-Request": "true"}) as htmx:
        response = await call_me(htmx)
    assert response.status_code == 200 and 'name="code"' in response.text
    [call] = application.state.sandbox.calls()
    [verification] = await verifications(db)
    assert verification.provider_ref == call["id"]
    assert [(a.outcome, a.provider_ref) for a in await attempts(db)] == [("sent", call["id"])]


@ON_POSTGRESQL
@pytest.mark.parametrize("settings_changes", [MANY_STARTS])
async def test_starts_while_server_processes_are_terminated_again_and_again_never_500_nor_lose_a_call(
    database_url: str, hooked, db
) -> None:
    application, hook, client = hooked
    stop = asyncio.Event()

    async def keep_terminating() -> None:
        while not stop.is_set():
            await terminate_backends(database_url)
            await asyncio.sleep(0.1)

    hook.after_create = lambda: terminate_backends(database_url)  # and right after every call placed

    async def start(n: int) -> httpx.Response:
        async with client(f"198.51.100.{n + 1}", headers={"HX-Request": "true"}) as htmx:
            return await call_me(htmx, phone=f"+3161300{n:04d}")

    killer = asyncio.create_task(keep_terminating())
    try:
        responses = []
        for batch in range(4):
            responses += await asyncio.gather(*(start(batch * 10 + n) for n in range(10)))
    finally:
        stop.set()
        await killer
    assert {r.status_code for r in responses} <= {200, 503}, "never a bare 500"
    assert all("trouble on our side" in unescape(r.text) for r in responses if r.status_code == 503)
    async with client() as plain:
        await until_recorded(plain)
    placed = {call["id"] for call in application.state.sandbox.calls()}
    assert placed, "some calls went out"
    recorded = {v.provider_ref for v in await verifications(db)}
    async with db() as session:
        sent = set((await session.scalars(select(Attempt.provider_ref).where(Attempt.outcome == "sent"))).all())
    assert placed <= recorded and placed <= sent, "every call placed has its verification and its sent row"


# -- the database away while a call is placed -------------------------------------------------


async def test_a_call_placed_while_the_database_is_away_is_recorded_when_it_is_back(
    hooked, outage: Outage, db, caplog: pytest.LogCaptureFixture
) -> None:
    application, hook, client = hooked
    hook.after_create = outage.begin
    async with client(headers={"HX-Request": "true"}) as htmx:
        response = await call_me(htmx)
        assert response.status_code == 503
        assert "We're calling +31 6 12345678, but we're having trouble on our side" in unescape(response.text)
        assert 'name="code"' in response.text, "the person can type the code that is on its way"
        [call] = application.state.sandbox.calls()
        [kept] = [r for r in caplog.records if r.levelno == logging.ERROR and call["id"] in r.getMessage()]
        health = (await htmx.get("/healthz")).json()
        assert health["database"] == "unavailable" and health["unrecorded_calls"] == 1
        hook.after_create = None
        await outage.end()
        assert (await until_recorded(htmx))["status"] == "ok"
        [verification] = await verifications(db)
        assert verification.id in kept.getMessage()
        assert verification.provider_ref == call["id"]
        assert [(a.kind, a.outcome, a.provider_ref) for a in await attempts(db)] == [("start", "sent", call["id"])]
        response = await htmx.post("/confirm", data={"code": spoken_code(application), "call": "1"})
        assert response.status_code == 200 and "is verified" in response.text


@pytest.mark.parametrize("settings_changes", [{"resend_cooldown": 0, "limit_start_per_number": "10/minute"}])
async def test_a_new_call_placed_while_the_database_is_away_is_recorded_when_it_is_back(
    hooked, outage: Outage, db
) -> None:
    application, hook, client = hooked
    async with client(headers={"HX-Request": "true"}) as htmx:
        await call_me(htmx)
        hook.after_create = outage.begin
        response = await htmx.post("/resend")
        assert response.status_code == 503 and 'name="call" value="2"' in response.text
        hook.after_create = None
        await outage.end()
        await until_recorded(htmx)
        newest = application.state.sandbox.calls()[0]
        [verification] = await verifications(db)
        assert (verification.provider_ref, verification.calls) == (newest["id"], 2)
        assert [a.outcome for a in await attempts(db)] == ["sent", "sent"]
        response = await htmx.post("/confirm", data={"code": newest["token"], "call": "2"})
        assert response.status_code == 200 and "is verified" in response.text


@pytest.mark.parametrize(
    ("unrecorded", "for_call"), [({"provider_ref": None}, "1"), ({}, "2")], ids=["first call", "new call"]
)
async def test_a_code_for_a_call_the_outbox_still_holds_is_a_503_to_try_again(
    htmx: httpx.AsyncClient, app: object, db, unrecorded: dict, for_call: str
) -> None:
    """The call went out but its record waits in the outbox: the verification in the database is behind."""
    await call_me(htmx)
    if unrecorded:
        async with db() as session:
            await session.execute(update(Verification).values(**unrecorded))
            await session.commit()
    response = await htmx.post("/confirm", data={"code": spoken_code(app), "call": for_call})
    assert response.status_code == 503 and "Please try again in a moment" in response.text
    assert 'name="code"' in response.text
    [verification] = await verifications(db)
    assert (verification.status, verification.code_attempts) == ("pending", 0)
    assert [a.outcome for a in await attempts(db)] == ["sent", "verification_busy"]


async def test_calls_still_unrecorded_at_shutdown_are_logged_as_lost(
    settings, clock: FakeClock, outage: Outage, caplog: pytest.LogCaptureFixture
) -> None:
    hook = HookedSandbox()
    application = create_app(settings, clock=clock, provider_transport=hook)
    hook.app = application
    async with LifespanManager(application) as manager:
        hook.after_create = outage.begin
        transport = httpx.ASGITransport(app=manager.app, client=("203.0.113.10", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            assert (await call_me(client)).status_code == 503
    [call] = application.state.sandbox.calls()  # type: ignore[attr-defined]
    [lost] = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR and "LOST" in r.getMessage()]
    assert call["id"] in lost


# -- every page path: a 503 with a message -------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "data"),
    [
        ("GET", "/", None),
        ("POST", "/verify", {"country": "NL", "phone": "0612345678"}),
        ("POST", "/confirm", {"code": "123456"}),
        ("POST", "/resend", {}),
        ("POST", "/restart", {}),
    ],
)
async def test_the_database_away_is_a_503_with_a_message_on_every_page_path(
    client: httpx.AsyncClient, app: object, outage: Outage, method: str, path: str, data: dict | None
) -> None:
    await call_me(client)
    await outage.begin()
    response = await client.request(method, path, data=data)
    assert response.status_code == 503 and response.headers["retry-after"] == "30"
    assert STORAGE_DOWN in unescape(response.text) and "<html" in response.text
    assert len(app.state.sandbox.calls()) == 1, "no other call placed"  # type: ignore[attr-defined]


async def test_the_database_away_is_a_plain_503_on_the_operators_pages(
    client: httpx.AsyncClient, outage: Outage
) -> None:
    await outage.begin()
    response = await client.get("/admin/", auth=OPERATOR)
    assert response.status_code == 503 and response.text == STORAGE_DOWN
    assert response.headers["cache-control"] == "no-store"


async def test_the_database_away_keeps_the_form_for_htmx(htmx: httpx.AsyncClient, outage: Outage) -> None:
    await outage.begin()
    response = await call_me(htmx)
    assert response.status_code == 503 and response.headers["hx-reswap"] == "none"
    assert STORAGE_DOWN in unescape(response.text)


async def test_healthz_says_when_the_database_does_not_answer(client: httpx.AsyncClient, outage: Outage) -> None:
    await outage.begin()
    response = await client.get("/healthz")
    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "database": "unavailable",
        "limiter": "ok",
        "unrecorded_calls": 0,
        "providers": {"messagebird": "ok"},
    }
    await outage.end()
    assert (await client.get("/healthz")).status_code == 200


@pytest.mark.parametrize("settings_changes", [{"ratelimit_storage_url": "redis://127.0.0.1:1/0"}])
async def test_healthz_says_when_the_limiter_storage_does_not_answer(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["limiter"] == "unavailable" and response.json()["database"] == "ok"


@pytest.mark.parametrize(
    "settings_changes", [{"ratelimit_storage_url": "redis://127.0.0.1:1/0", "ratelimit_fail_open": True}]
)
async def test_healthz_reports_the_limiter_but_stays_up_when_failing_open(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok" and response.json()["limiter"] == "unavailable"


# -- SQLite's own troubles -------------------------------------------------------------------


def sqlite_file(database_url: str) -> Path:
    return Path(make_url(database_url).database or "")


@pytest.fixture
def immutable(database_url: str) -> Iterator[Callable[[], None]]:
    """Makes the SQLite file immutable (chattr +i: even root cannot write it); undone afterwards."""
    path = sqlite_file(database_url)
    require(shutil.which("chattr") is not None, "chattr (e2fsprogs) is not installed")
    made: list[Path] = []

    def make() -> None:
        # Only the database file: its -shm file is mapped into memory, and making
        # that immutable would fault the process rather than refuse a write.
        result = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
        require(result.returncode == 0, f"this filesystem has no immutable files: {result.stderr.strip()}")
        made.append(path)

    yield make
    for file in made:
        subprocess.run(["chattr", "-i", str(file)], check=True)


@ON_SQLITE
async def test_a_read_only_sqlite_file_refuses_starts_with_a_503_before_any_call(
    htmx: httpx.AsyncClient, app: object, immutable: Callable[[], None], database_url: str
) -> None:
    await htmx.get("/healthz")  # the pool holds an open, writable connection
    immutable()
    assert not os.access(sqlite_file(database_url), os.W_OK), "root cannot write it either"
    response = await call_me(htmx)
    assert response.status_code == 503 and STORAGE_DOWN in unescape(response.text)
    assert not app.state.sandbox.calls()  # type: ignore[attr-defined]
    health = await htmx.get("/healthz")
    assert health.status_code == 503 and health.json()["database"] == "unavailable"


@ON_SQLITE
async def test_a_deleted_sqlite_file_refuses_starts_with_a_503_and_is_not_made_anew(
    htmx: httpx.AsyncClient, app: object, database_url: str
) -> None:
    path = sqlite_file(database_url)
    await htmx.get("/healthz")
    for file in path.parent.glob(path.name + "*"):
        file.unlink()
    response = await call_me(htmx)
    assert response.status_code == 503 and STORAGE_DOWN in unescape(response.text)
    assert not app.state.sandbox.calls()  # type: ignore[attr-defined]
    health = await htmx.get("/healthz")
    assert health.status_code == 503 and health.json()["database"] == "unavailable"
    assert not path.exists(), "no empty database was made in its place"
