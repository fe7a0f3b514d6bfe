"""Where a request's time goes, in process: CPU per request and database round trips, per path.

    .venv/bin/python bench/profile_flow.py [--db sqlite|postgresql] [--requests 400]
        [--only page,start,confirm_wrong,confirm_right,refused] [--cprofile bench/.data/flow] [--top 20]

The app is `create_app` with production-like settings (a "real" key, so no
sandbox; limits raised except for the refusal path), its lifespan running,
called straight as an ASGI app with hand-made requests: no HTTP client or
server in the figures, only voice2fa's own work. The provider is a
MessageBird answer made in process (`httpx.MockTransport`, the objects of
bench/stub.py), so its cost is nearly nothing.

For each path, one request at a time: CPU ms per request (the process's user
+ system time, which includes aiosqlite's worker thread), wall ms, and what
the database was asked per request: statements, transactions begun,
committed and rolled back (a session closed without a commit), and
connection checkouts (each a ping, `pool_pre_ping`). On PostgreSQL every one
of them is a round trip (asyncpg sends BEGIN as a statement of its own). With --cprofile PREFIX
each path is also profiled (PREFIX-<path>.prof, for snakeviz or pstats) and
the functions with the most time of their own are printed. The profile sees
the event loop's thread only; aiosqlite's queries run in its own thread.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
import re
import secrets
import sys
import time
from collections import Counter
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import asyncpg
import httpx
from asgi_lifespan import LifespanManager
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.pool import Pool
from starlette.datastructures import Secret

from webapp import migrate
from webapp.app import create_app
from webapp.provider import CallOptions
from webapp.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stub import RIGHT_CODE, _object  # noqa: E402  (bench/ is not a package)

DATA = Path(__file__).resolve().parent / ".data"
POSTGRES = "postgresql://postgres@127.0.0.1:5432"
RAISED = "1000000/minute"
BASE_URL = "http://stub.invalid"
SCENARIOS = ("page", "start", "confirm_wrong", "confirm_right", "refused")


# -- the far side and the database -------------------------------------------------------------


def messagebird(request: httpx.Request) -> httpx.Response:
    """MessageBird's answers, as bench/stub.py gives them, without a process."""
    path = request.url.path
    if request.method == "POST" and path == "/verify":
        return httpx.Response(201, content=_object(secrets.token_hex(16), "sent"))
    if request.method == "DELETE":
        return httpx.Response(204)
    token = parse_qs(request.url.query.decode()).get("token", [""])[0]
    if not token:
        return httpx.Response(200, content=_object(path.rsplit("/", 1)[-1], "sent"))
    if token == RIGHT_CODE:
        return httpx.Response(200, content=_object(path.rsplit("/", 1)[-1], "verified"))
    return httpx.Response(
        422, content=b'{"errors":[{"code":10,"description":"The token is invalid.","parameter":"token"}]}'
    )


async def new_database(kind: str) -> tuple[str, Callable[[], Any]]:
    """A migrated database; its URL and what drops it."""
    name = f"bench_profile_{secrets.token_hex(4)}"
    if kind == "sqlite":
        DATA.mkdir(exist_ok=True)
        path = DATA / f"{name}.db"
        url = f"sqlite+aiosqlite:///{path}"
        await asyncio.to_thread(migrate.upgrade, url)

        async def drop() -> None:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)

        return url, drop
    await _postgres(f'CREATE DATABASE "{name}"')
    url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    await asyncio.to_thread(migrate.upgrade, url)
    return url, lambda: _postgres(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _postgres(statement: str) -> None:
    connection = await asyncpg.connect(f"{POSTGRES}/test")
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


# -- counting what the database is asked -------------------------------------------------------


class DatabaseCalls:
    """Statements, commits and checkouts of every engine and pool in the process."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        event.listen(Engine, "before_cursor_execute", self._statement)
        for name in ("begin", "commit", "rollback"):
            event.listen(Engine, name, lambda _conn, name=name: self.counts.update([name]))
        event.listen(Pool, "checkout", lambda *_: self.counts.update(["checkout"]))

    def _statement(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        self.counts["statement"] += 1
        self.counts["statement: " + statement.split(None, 1)[0].upper()] += 1

    @contextmanager
    def counting(self) -> Any:
        before = self.counts.copy()
        found: Counter[str] = Counter()
        yield found
        found.update(self.counts)
        found.subtract(before)


# -- requests, straight to the ASGI app ---------------------------------------------------------


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


class Caller:
    """Sends hand-made HTTP requests to an ASGI app, as uvicorn would hand them over."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(
        self,
        method: str,
        target: str,
        *,
        ip: str,
        form: dict[str, str] | None = None,
        cookie: str | None = None,
        htmx: bool = True,
    ) -> Answer:
        parts = urlsplit(target)
        body = urlencode(form).encode() if form is not None else b""
        headers = [(b"host", b"voice2fa.test")]
        if form is not None:
            headers += [
                (b"content-type", b"application/x-www-form-urlencoded"),
                (b"content-length", str(len(body)).encode()),
            ]
        if htmx:
            headers.append((b"hx-request", b"true"))
        if cookie:
            headers.append((b"cookie", cookie.encode()))
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": parts.path,
            "raw_path": parts.path.encode(),
            "query_string": parts.query.encode(),
            "root_path": "",
            "headers": headers,
            "client": (ip, 40000),
            "server": ("127.0.0.1", 8000),
        }
        sent = False
        status, answer_headers, chunks = 0, {}, []

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if sent:
                await asyncio.sleep(3600)  # no disconnect while the app is answering
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                for name, value in message.get("headers", []):
                    answer_headers[name.decode().lower()] = value.decode()
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, send)
        return Answer(status, answer_headers, b"".join(chunks))


def session_cookie(answer: Answer) -> str:
    found = re.match(r"(voice2fa_session=[^;]+)", answer.headers.get("set-cookie", ""))
    assert found, f"no session cookie in the answer ({answer.status})"
    return found.group(1)


# -- the paths ----------------------------------------------------------------------------------


@dataclass
class Result:
    name: str
    requests: int
    cpu_ms: float
    wall_ms: float
    calls: Counter[str]
    statuses: Counter[int]


class Paths:
    """Each path's preparation (not measured) and the request measured."""

    def __init__(self, call: Caller, n: int) -> None:
        self.call, self.n = call, n
        self._number = 0

    def number(self) -> str:
        self._number += 1
        return f"+3164{self._number:07d}"

    def ip(self, i: int) -> str:
        return f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}"

    async def started_cookies(self, count: int) -> list[str]:
        cookies = []
        for i in range(count):
            answer = await self.call(
                "POST", "/verify", ip=self.ip(200000 + self._number), form={"country": "NL", "phone": self.number()}
            )
            assert answer.status == 200, answer.body[:300]
            cookies.append(session_cookie(answer))
        return cookies

    async def prepare(self, name: str) -> list[Callable[[], Any]]:
        if name == "page":
            return [lambda: self.call("GET", "/", ip="192.0.2.1", htmx=False)] * self.n
        if name == "start":
            return [
                # The defaults bind now: a fresh number per request, drawn before the timing starts.
                (
                    lambda i=i, phone=self.number(): self.call(  # noqa: B008
                        "POST",
                        "/verify",
                        ip=self.ip(i),
                        form={"country": "NL", "phone": phone},
                    )
                )
                for i in range(self.n)
            ]
        if name == "confirm_wrong":
            # Four wrong codes each: one fewer than VERIFY_MAX_ATTEMPTS, so every one stays pending.
            cookies = await self.started_cookies((self.n + 3) // 4)
            return [
                (
                    lambda cookie=cookies[i // 4]: self.call(
                        "POST", "/confirm", ip="192.0.2.2", cookie=cookie, form={"code": "000000"}
                    )
                )
                for i in range(self.n)
            ]
        if name == "confirm_right":
            cookies = await self.started_cookies(self.n)
            return [
                (
                    lambda cookie=cookie: self.call(
                        "POST", "/confirm", ip="192.0.2.3", cookie=cookie, form={"code": RIGHT_CODE}
                    )
                )
                for cookie in cookies
            ]
        if name == "refused":
            # The flooding address is over its limit (LIMIT_START_PER_IP of this app: 5/minute) from the start.
            for _ in range(5):
                await self.call("POST", "/verify", ip="198.51.100.66", form={"country": "NL", "phone": self.number()})
            return [
                (
                    lambda phone=self.number(): self.call(  # noqa: B008
                        "POST",
                        "/verify",
                        ip="198.51.100.66",  # noqa: B008
                        form={"country": "NL", "phone": phone},
                    )
                )
                for _ in range(self.n)
            ]
        raise ValueError(name)


#: Where a function's own time is counted: the first pattern its file (or built-in's name) matches.
GROUPS = (
    ("waiting (epoll: the loop idle, e.g. for aiosqlite's thread)", r"select\.epoll|selectors\.py"),
    ("hand-offs to worker threads (queue put, lock release)", r"SimpleQueue|_thread\.lock|threading\.py"),
    ("voice2fa (webapp/)", r"/webapp/"),
    ("SQLAlchemy", r"/sqlalchemy/|greenlet"),
    ("aiosqlite / sqlite3", r"aiosqlite|sqlite3"),
    ("asyncpg", r"asyncpg"),
    ("Starlette", r"/starlette/"),
    ("Jinja2 and templates", r"jinja2|markupsafe|<template>|\.html"),
    ("httpx / httpcore (the provider call)", r"/httpx/|/httpcore/"),
    ("limits / slowapi", r"/limits/|/slowapi/"),
    ("phonenumbers", r"phonenumbers"),
    ("asyncio / anyio", r"asyncio|anyio|sniffio|_contextvars"),
    ("the profiler's own driver", r"profile_flow\.py"),
)


def where_the_time_goes(stats: pstats.Stats, requests: int) -> str:
    """Own time per request, summed by package."""
    totals: Counter[str] = Counter()
    for (filename, _line, function), (_cc, _nc, tottime, _ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        where = f"{filename}:{function}"
        group = next((name for name, pattern in GROUPS if re.search(pattern, where)), "other (stdlib, builtins)")
        totals[group] += tottime
    everything = sum(totals.values())
    lines = [
        f"  {ms:7.3f} ms/req  {100 * ms / (everything * 1000 / requests):5.1f} %  {group}"
        for group, ms in ((g, t * 1000 / requests) for g, t in totals.most_common())
    ]
    return "own time by package:\n" + "\n".join(lines)


EXPECTED = {"page": 200, "start": 200, "confirm_wrong": 422, "confirm_right": 200, "refused": 429}


async def measure(name: str, paths: Paths, calls: DatabaseCalls, profile_prefix: str | None, top: int) -> Result:
    requests = await paths.prepare(name)
    statuses: Counter[int] = Counter()
    profiler = cProfile.Profile() if profile_prefix else None
    with calls.counting() as counted:
        cpu, wall = time.process_time(), time.perf_counter()
        if profiler:
            profiler.enable()
        for request in requests:
            statuses[(await request()).status] += 1
        if profiler:
            profiler.disable()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    if statuses[EXPECTED[name]] != len(requests):
        print(f"warning: {name}: statuses {dict(statuses)}, expected {EXPECTED[name]}", file=sys.stderr)
    if profiler:
        path = f"{profile_prefix}-{name}.prof"
        profiler.dump_stats(path)
        stats = pstats.Stats(profiler, stream=io.StringIO())
        print(f"\n== {name}: {path} (profiled: times include cProfile's overhead) ==")
        print(where_the_time_goes(stats, len(requests)))
        text = io.StringIO()
        stats.stream = text  # type: ignore[attr-defined]
        stats.sort_stats("tottime").print_stats(top)
        print(f"the {top} functions with the most time of their own:")
        print("\n".join(line for line in text.getvalue().splitlines()[6:] if line.strip()))
    n = len(requests)
    return Result(name, n, cpu / n * 1000, wall / n * 1000, counted, statuses)


def settings_for(database_url: str) -> Settings:
    return Settings(
        messagebird_api_key=Secret("bench-live-key"),
        messagebird_base_url=BASE_URL,
        database_url=database_url,
        secret_key=Secret("bench-" + "k" * 40),
        cookie_secure=False,
        call=CallOptions(max_attempts=5),
        limit_start_per_ip="5/minute",  # raised per path below, except for the refusal's flooding address
        limit_check_per_ip=RAISED,
        limit_calls_global=RAISED,
        limit_calls_per_country=RAISED,
        limit_start_per_number=RAISED,
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--only", default=",".join(SCENARIOS))
    parser.add_argument("--cprofile", metavar="PREFIX", help="write PREFIX-<path>.prof and print the top functions")
    parser.add_argument("--top", type=int, default=20)
    args = parser.parse_args()
    wanted = [name for name in args.only.split(",") if name]
    unknown = set(wanted) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown paths {sorted(unknown)}; known: {', '.join(SCENARIOS)}")

    calls = DatabaseCalls()
    url, drop = await new_database(args.db)
    results = []
    try:
        app = create_app(settings_for(url), provider_transport=httpx.MockTransport(messagebird))
        async with LifespanManager(app) as manager:
            paths = Paths(Caller(manager.app), args.requests)
            await paths.prepare("page")  # nothing to prepare; the first requests warm up below
            for _ in range(20):
                await paths.call("GET", "/", ip="192.0.2.1", htmx=False)
            for name in wanted:
                results.append(await measure(name, paths, calls, args.cprofile, args.top))
    finally:
        await drop()

    print(f"\nvoice2fa in process on {args.db}, {args.requests} requests per path, one at a time")
    print(
        f"{'path':<15} {'CPU ms/req':>10} {'wall ms/req':>11} {'statements':>10} {'begins':>6} {'commits':>7} "
        f"{'rollbacks':>9} {'checkouts':>9}  statements by kind (per request)"
    )
    for r in results:
        kinds = ", ".join(
            f"{kind.removeprefix('statement: ')} {count / r.requests:.2f}"
            for kind, count in sorted(r.calls.items())
            if kind.startswith("statement: ") and count
        )
        per = {kind: r.calls[kind] / r.requests for kind in ("statement", "begin", "commit", "rollback", "checkout")}
        print(
            f"{r.name:<15} {r.cpu_ms:>10.2f} {r.wall_ms:>11.2f} {per['statement']:>10.2f} {per['begin']:>6.2f} "
            f"{per['commit']:>7.2f} {per['rollback']:>9.2f} {per['checkout']:>9.2f}  {kinds}"
        )


if __name__ == "__main__":
    asyncio.run(main())
