"""Limits stay exact when `voice2fa serve` runs as several processes sharing Redis.

Real processes: the sandbox alone (`voice2fa sandbox`), and the app with four
uvicorn workers, its counters in Redis under a key prefix of the test's own
and its attempts log in a SQLite file in the test's working directory.
"""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from http.cookiejar import CookieJar, DefaultCookiePolicy
from pathlib import Path

import httpx
import phonenumbers
import pytest

from tests.processes.support import Running, running
from tests.support import require

try:
    import redis
except ImportError:  # the redis fixture says so, through require()
    redis = None  # type: ignore[assignment]

REDIS_URL = "redis://127.0.0.1:6379/0"
WORKERS = 4
#: The proxy in front of the app, in the fixture's default: the test itself.
TRUSTED = "127.0.0.1/32"
#: Refusals that stop a second call to a number already being called.
NUMBER_BLOCKED = {"blocked_number", "blocked_pending"}


@dataclass(frozen=True)
class Served:
    """A running `voice2fa serve`: where it answers and where it logs attempts."""

    url: str
    database: Path
    log: Path


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    """A client of the Redis on 127.0.0.1:6379, or a skip saying it does not answer."""
    require(redis is not None, "the redis package is not installed (pip install redis)")
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=0.5, socket_timeout=0.5)
    try:
        client.ping()
    except redis.RedisError as exc:
        client.close()
        require(False, f"Redis does not answer at {REDIS_URL} ({exc}): the shared-limits tests need it")
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def key_prefix(redis_client: redis.Redis) -> Iterator[str]:
    """A RATELIMIT_KEY_PREFIX no other run shares; its keys are deleted afterwards."""
    prefix = f"v2fa-test-{uuid.uuid4().hex}"
    yield prefix
    keys = list(redis_client.scan_iter(match=f"*{prefix}*", count=1000))
    if keys:
        redis_client.delete(*keys)


@pytest.fixture(scope="module")
def sandbox() -> Iterator[str]:
    """`voice2fa sandbox` alone: the MessageBird the apps call; its base URL.

    One for the module, as one MessageBird serves every deployment: each test
    calls numbers of its own and counts only the calls to those.
    """
    with running("sandbox", ready="/_sandbox/calls") as sandbox:
        yield sandbox.url


def wait_for_workers(served: Served, process: subprocess.Popen[bytes], seconds: float = 30.0) -> None:
    """Every worker has run its lifespan (uvicorn logs it once per worker)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"voice2fa serve exited with {process.returncode}:\n{served.log.read_text()}")
        if served.log.read_text().count("Application startup complete.") >= WORKERS:
            return
        time.sleep(0.1)
    raise AssertionError(f"{WORKERS} workers were not up within {seconds} s:\n{served.log.read_text()}")


@pytest.fixture
def served(
    request: pytest.FixtureRequest, key_prefix: str, sandbox: str, tmp_path: Path, serve: Callable[..., Running]
) -> Served:
    """`voice2fa serve --workers 4` on Redis counters, in an empty working directory.

    TRUSTED_PROXIES is 127.0.0.1/32 unless a test passes another value
    (indirect parametrisation; "" trusts no proxy).
    """
    trusted = getattr(request, "param", TRUSTED)
    settings = {
        "MESSAGEBIRD_API_KEY": "test-key",
        "MESSAGEBIRD_BASE_URL": sandbox,
        "RATELIMIT_STORAGE_URL": REDIS_URL,
        "RATELIMIT_KEY_PREFIX": key_prefix,
        "COOKIE_SECURE": "false",
    }
    if trusted:
        settings["TRUSTED_PROXIES"] = trusted
    log = tmp_path / "serve.log"
    # --log-level info: uvicorn says "Application startup complete." once per worker;
    # the first of them answers /healthz, within the time all four are given.
    server = serve("--workers", str(WORKERS), log=log, log_level="info", seconds=30.0, **settings)
    info = Served(url=server.url, database=tmp_path / "voice2fa.db", log=log)
    wait_for_workers(info, server.process)
    return info


async def post_verify_all(base_url: str, requests: list[tuple[str, str]]) -> list[httpx.Response]:
    """POST /verify for every (phone, X-Forwarded-For), all at once; the responses in order.

    One connection per request, and no cookie kept between them: each is a
    different person who has never been here, not one browser's session.
    """
    no_cookies = CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))
    limits = httpx.Limits(max_connections=len(requests), max_keepalive_connections=len(requests))
    async with httpx.AsyncClient(base_url=base_url, timeout=30.0, limits=limits, cookies=no_cookies) as client:
        answers = await asyncio.gather(
            *(
                client.post("/verify", data={"country": "NL", "phone": phone}, headers={"X-Forwarded-For": ip})
                for phone, ip in requests
            ),
            return_exceptions=True,
        )
    failed = [answer for answer in answers if not isinstance(answer, httpx.Response)]
    assert not failed, f"{len(failed)} of {len(requests)} requests got no answer, e.g. {failed[0]!r}"
    return answers  # type: ignore[return-value]


async def calls_to(sandbox: str, numbers: list[str]) -> list[str]:
    """The recipients (E.164) of the calls the sandbox placed to any of `numbers`."""
    async with httpx.AsyncClient(timeout=5.0) as client:
        placed = (await client.get(sandbox + "/_sandbox/calls")).json()
    return [recipient for call in placed if (recipient := "+" + call["recipient"]) in numbers]


def start_attempts(served: Served) -> list[tuple[str, str | None, str]]:
    """Every start request the attempts log accounts for: (outcome, number, ip), a folded row `count` times."""
    with closing(sqlite3.connect(served.database)) as db:
        rows = db.execute("SELECT outcome, number, ip, count FROM attempts WHERE kind = 'start' ORDER BY id").fetchall()
    return [(outcome, number, ip) for outcome, number, ip, count in rows for _ in range(count)]


def e164(national: str) -> str:
    """A Dutch number as typed, in E.164; it must be valid, or the test would prove nothing."""
    parsed = phonenumbers.parse(national, "NL")
    assert phonenumbers.is_valid_number(parsed), national
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


async def test_one_number_asked_for_by_200_clients_at_once_is_called_once(
    served: Served, sandbox: str, redis_client: redis.Redis, key_prefix: str
) -> None:
    number = e164("0612345678")
    # Each client its own address, so the per-IP limit (5/minute) plays no part.
    responses = await post_verify_all(served.url, [("0612345678", f"198.51.100.{i + 1}") for i in range(200)])

    statuses = Counter(response.status_code for response in responses)
    assert statuses == {303: 1, 429: 199}, (statuses, served.log.read_text()[-3000:])
    assert all(r.headers.get("retry-after") for r in responses if r.status_code == 429)
    assert await calls_to(sandbox, [number]) == [number]
    rows = start_attempts(served)
    outcomes = Counter(outcome for outcome, _number, _ip in rows)
    assert len(rows) == 200 and outcomes["sent"] == 1, outcomes
    assert set(outcomes) - {"sent"} <= NUMBER_BLOCKED, outcomes
    assert {row_number for _outcome, row_number, _ip in rows} == {number}
    # The workers counted in Redis, together, not each in its own memory.
    assert list(redis_client.scan_iter(match=f"*{key_prefix}/number/{number}/*"))


async def test_one_address_asking_for_50_numbers_at_once_gets_5_calls(served: Served, sandbox: str) -> None:
    numbers = [f"06120{100 + i:05d}" for i in range(50)]
    responses = await post_verify_all(served.url, [(number, "203.0.113.77") for number in numbers])

    assert Counter(r.status_code for r in responses) == {303: 5, 429: 45}
    assert len(await calls_to(sandbox, [e164(number) for number in numbers])) == 5
    rows = start_attempts(served)
    assert Counter(outcome for outcome, _number, _ip in rows) == {"sent": 5, "blocked_ip": 45}
    assert {ip for _outcome, _number, ip in rows} == {"203.0.113.77"}


@pytest.mark.parametrize("served", [""], ids=["no-trusted-proxy"], indirect=True)
async def test_a_forwarded_for_header_from_an_untrusted_peer_changes_nothing(served: Served, sandbox: str) -> None:
    numbers = [f"06120{200 + i:05d}" for i in range(10)]
    spoofed = [(number, f"192.0.2.{i + 1}") for i, number in enumerate(numbers)]
    responses = await post_verify_all(served.url, spoofed)

    assert Counter(r.status_code for r in responses) == {303: 5, 429: 5}
    assert len(await calls_to(sandbox, [e164(number) for number in numbers])) == 5
    rows = start_attempts(served)
    assert Counter(outcome for outcome, _number, _ip in rows) == {"sent": 5, "blocked_ip": 5}
    assert {ip for _outcome, _number, ip in rows} == {"127.0.0.1"}
