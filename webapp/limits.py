"""Rate limits: counters per IP, per number, per country and overall.

One slowapi `Limiter` (moving window, storage from RATELIMIT_STORAGE_URL:
`memory://` in one process, `redis://…` across several) holds every counter;
its `limits` strategy does the counting. Each item's hit is atomic in the
storage, so limits stay exact when many processes start calls for one number
at once.

A refusal spends nothing: every item of every counter a request needs is
looked at first, and only when all have room is one event counted on each.
So a try refused by `3/10minutes` does not use up the `1/30seconds` slot
beside it, and the wait it is told is the longest of all the full items.
(Two processes racing for the last slot both see room; the loser's hits on
the items before the one it lost stay spent, as the storage cannot take a
moving-window entry back: an over-count, never an under-count.)

slowapi's route decorator talks to the storage synchronously on the event
loop, which a Redis round trip must not block, so counting runs here in a
worker thread instead, through the same Limiter and storage.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

import anyio.to_thread
from limits import RateLimitItem, parse_many
from slowapi import Limiter
from starlette.requests import Request

from webapp.client_ip import limit_key

log = logging.getLogger(__name__)

T = TypeVar("T")


class LimiterUnavailable(Exception):
    """The limiter's storage did not answer."""


class Counter(NamedTuple):
    """The items of one limit setting, counted under one key."""

    items: Sequence[RateLimitItem]
    key: tuple[str, ...]


@dataclass(frozen=True)
class Full:
    """Counters that had no room: each one's wait in seconds, None where it had room."""

    waits: tuple[int | None, ...]

    @property
    def wait(self) -> int:
        """The real wait: until every full item has room again."""
        return max(wait for wait in self.waits if wait)


def _unused_key(request: Request) -> str:  # pragma: no cover - keys are passed explicitly
    raise RuntimeError("voice2fa passes limit keys explicitly")


class RateLimits:
    """Named limits over one limiter storage."""

    def __init__(
        self,
        storage_url: str,
        *,
        key_prefix: str = "voice2fa",
        ipv6_prefix: int = 64,
        now: Callable[[], float] = time.time,
    ) -> None:
        options: dict[str, Any] = {"socket_connect_timeout": 1.0, "socket_timeout": 1.0} if storage_url.startswith("redis") else {}
        self.limiter = Limiter(
            key_func=_unused_key,
            storage_uri=storage_url,
            storage_options=options,
            strategy="moving-window",
            key_prefix=key_prefix,
        )
        self._prefix = key_prefix
        self._ipv6_prefix = ipv6_prefix
        # The storage's own notion of now (tests move it), for Retry-After.
        self._now = now

    def client_key(self, ip: str) -> str:
        """The key every per-IP counter counts this client under (IPv6: its network)."""
        return limit_key(ip, self._ipv6_prefix)

    async def hit(self, items: Sequence[RateLimitItem], *key: str) -> int | None:
        """Count one event for `key` on every item if all have room; else count nothing and return the wait."""
        full = await self.hit_all(Counter(items, key))
        return full.wait if full else None

    async def hit_all(self, *counters: Counter) -> Full | None:
        """Count one event on every counter if all have room; else count nothing and say which are full."""
        return await self._in_thread(self._hit_all, counters)

    async def blocked(self, items: Sequence[RateLimitItem], *key: str) -> int | None:
        """Seconds to wait if one of `items` is full for `key` already, else None; counts nothing."""
        full = await self.blocked_all(Counter(items, key))
        return full.wait if full else None

    async def blocked_all(self, *counters: Counter) -> Full | None:
        """Which counters are full already, if any; counts nothing."""
        return await self._in_thread(self._full, counters)

    async def healthy(self) -> bool:
        """The storage answers (a ping, for Redis)."""
        try:
            return bool(await anyio.to_thread.run_sync(self.limiter.limiter.storage.check))
        except Exception as exc:  # noqa: BLE001 - whatever the storage raised, the answer is "no"
            log.error("rate limit storage unavailable: %s: %s", type(exc).__name__, exc)
            return False

    async def stats(self, items: Sequence[RateLimitItem], *key: str) -> list[tuple[RateLimitItem, int, float]]:
        """For each item: (item, remaining, reset time as a timestamp), for the operators' pages."""
        return await self._in_thread(self._stats, items, key)

    async def _in_thread(self, work: Callable[..., T], *args: object) -> T:
        try:
            return await anyio.to_thread.run_sync(work, *args)
        except Exception as exc:
            # Whatever the storage raised (connection refused, timeout, …): the
            # caller decides between failing closed and failing open.
            log.error("rate limit storage unavailable: %s: %s", type(exc).__name__, exc)
            raise LimiterUnavailable(str(exc)) from exc

    def _stats(self, items: Sequence[RateLimitItem], key: tuple[str, ...]) -> list[tuple[RateLimitItem, int, float]]:
        strategy = self.limiter.limiter
        found = []
        for item in items:
            reset, remaining = strategy.get_window_stats(item, self._prefix, *key)
            found.append((item, remaining, reset))
        return found

    def _full(self, counters: Sequence[Counter]) -> Full | None:
        waits: list[int | None] = []
        for items, key in counters:
            full = [reset for _item, remaining, reset in self._stats(items, key) if remaining < 1]
            waits.append(max(1, math.ceil(max(full) - self._now())) if full else None)
        return Full(tuple(waits)) if any(waits) else None

    def _hit_all(self, counters: Sequence[Counter]) -> Full | None:
        full = self._full(counters)
        if full:
            return full
        strategy = self.limiter.limiter
        for index, (items, key) in enumerate(counters):
            for item in items:
                if not strategy.hit(item, self._prefix, *key):
                    # Lost the last slot to a concurrent request since the look above.
                    lost = self._full(counters)
                    return lost or Full(tuple(1 if i == index else None for i in range(len(counters))))
        return None


def parse(value: str) -> list[RateLimitItem]:
    """"5/minute;20/hour" as limit items, strictest window first."""
    return sorted(parse_many(value), key=lambda item: item.get_expiry())
