"""Rate limits: counters per IP, per number, per country and overall.

Every counter lives in one storage, from RATELIMIT_STORAGE_URL: `memory://`
in one process, `redis://…` across several; `limits`' strategies do the
counting. Each item's hit is atomic in the storage, so limits stay exact
when many processes start calls for one number at once.

A refusal spends nothing: every item of every counter a request needs is
looked at first, and only when all have room is one event counted on each.
So a try refused by `3/10minutes` does not use up the `1/30seconds` slot
beside it, and the wait it is told is the longest of all the full items.
(Two processes racing for the last slot both see room; the loser's hits on
the items before the one it lost stay spent, as the storage cannot take a
moving-window entry back: an over-count, never an under-count.)

Which strategy counts an item depends on its size: an exact moving window
for up to SMALL_LIMIT events per window (`limits` keeps one entry per event,
so its cost grows with the limit), and `limits`' sliding-window counter above
that (two counters per window whatever the limit; it weighs the previous
window's count by how much of it still overlaps the window sliding over it).

`memory://` is `webapp.counters`' storage, on the app's clock, built by
slowapi's `Limiter` and called inline: a hit takes microseconds, less than a
hop to a worker thread. Redis is `limits`' async storage (redis-py's asyncio
client) on the event loop: `bench/limiter_storage.py` measured it at about
twice the requests/s of the sync storage in a worker thread, for less CPU
per request (0.23 ms against 0.3 to 0.5). (slowapi's route decorator would call Redis synchronously on the
event loop, blocking it for each round trip.)
"""

from __future__ import annotations

import inspect
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

import redis.asyncio
from limits import RateLimitItem, parse_many
from limits.aio import strategies as aio_strategies
from limits.aio.storage import RedisStorage
from limits.storage import storage_from_string
from limits.strategies import SlidingWindowCounterRateLimiter
from slowapi import Limiter
from starlette.requests import Request

from webapp import counters
from webapp.client_ip import limit_key
from webapp.waits import seconds_left

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Limits up to this many events per window are counted exactly (moving window); larger ones by the sliding-window counter.
SMALL_LIMIT = 100


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
        scheme = storage_url.partition("://")[0]
        self.inline = scheme == "memory"
        self._pool: redis.asyncio.ConnectionPool | None = None
        self.limiter: Limiter | None = None
        if self.inline:
            self.limiter = Limiter(
                key_func=_unused_key,
                storage_uri=f"{counters.SCHEME}://",
                storage_options={"now": now},  # type: ignore[dict-item]  # slowapi types options as strings; ours takes the clock
                strategy="moving-window",
                key_prefix=key_prefix,
            )
            self._moving: Any = self.limiter.limiter
            self._sliding: Any = SlidingWindowCounterRateLimiter(self._moving.storage)
        else:
            if scheme in ("redis", "rediss", "redis+unix"):
                # Our own pool: closed by aclose(), and a storage that is away answers within a second.
                self._pool = redis.asyncio.ConnectionPool.from_url(
                    storage_url.replace("redis+unix://", "unix://", 1), socket_connect_timeout=1.0, socket_timeout=1.0
                )
                storage: Any = RedisStorage(  # our own pool; limits types its options loosely
                    "async+" + storage_url,
                    implementation="redispy",
                    connection_pool=self._pool,  # type: ignore[arg-type]  # limits types **options as scalars
                )
            else:
                storage = storage_from_string("async+" + storage_url)
            self._moving = aio_strategies.MovingWindowRateLimiter(storage)
            self._sliding = aio_strategies.SlidingWindowCounterRateLimiter(storage)
        self.storage = self._moving.storage
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
        return await self._guarded(self._hit_all(counters))

    async def blocked(self, items: Sequence[RateLimitItem], *key: str) -> int | None:
        """Seconds to wait if one of `items` is full for `key` already, else None; counts nothing."""
        full = await self.blocked_all(Counter(items, key))
        return full.wait if full else None

    async def blocked_all(self, *counters: Counter) -> Full | None:
        """Which counters are full already, if any; counts nothing."""
        return await self._guarded(self._full(counters))

    async def healthy(self) -> bool:
        """The storage answers (a ping, for Redis)."""
        try:
            return bool(await self._guarded(_value(self.storage.check())))
        except LimiterUnavailable:
            return False

    async def stats(self, items: Sequence[RateLimitItem], *key: str) -> list[tuple[RateLimitItem, int, float]]:
        """For each item: (item, remaining, reset time as a timestamp), for the operators' pages."""
        return await self._guarded(self._stats(items, key))

    async def aclose(self) -> None:
        """Close the connections to the storage (the app's lifespan ends)."""
        if self._pool is not None:
            await self._pool.aclose()

    async def _guarded(self, work: Awaitable[T]) -> T:
        try:
            return await work
        except Exception as exc:
            # Whatever the storage raised (connection refused, timeout, …): the
            # caller decides between failing closed and failing open.
            log.error("rate limit storage unavailable: %s: %s", type(exc).__name__, exc)
            raise LimiterUnavailable(str(exc)) from exc

    def strategy(self, item: RateLimitItem) -> Any:
        """The exact moving window for a small limit, the sliding-window counter for a large one."""
        return self._moving if item.amount <= SMALL_LIMIT else self._sliding

    async def _stats(
        self, items: Sequence[RateLimitItem], key: tuple[str, ...]
    ) -> list[tuple[RateLimitItem, int, float]]:
        found = []
        for item in items:
            if item.amount <= SMALL_LIMIT:
                reset, remaining = await _value(self._moving.get_window_stats(item, self._prefix, *key))
            else:
                # Not limits' get_window_stats: it reads time.time, and its reset is the next freed slot only.
                window = await _value(
                    self.storage.get_sliding_window(item.key_for(self._prefix, *key), item.get_expiry())
                )
                remaining, wait = sliding_room(item.amount, item.get_expiry(), *window)
                reset = self._now() + wait
            found.append((item, remaining, reset))
        return found

    async def _full(self, counters: Sequence[Counter]) -> Full | None:
        waits: list[int | None] = []
        for items, key in counters:
            full = [reset for _item, remaining, reset in await self._stats(items, key) if remaining < 1]
            waits.append(seconds_left(max(full) - self._now()) if full else None)
        return Full(tuple(waits)) if any(waits) else None

    async def _hit_all(self, counters: Sequence[Counter]) -> Full | None:
        full = await self._full(counters)
        if full:
            return full
        for index, (items, key) in enumerate(counters):
            for item in items:
                if not await _value(self.strategy(item).hit(item, self._prefix, *key)):
                    # Lost the last slot to a concurrent request since the look above.
                    lost = await self._full(counters)
                    return lost or Full(tuple(1 if i == index else None for i in range(len(counters))))
        return None


async def _value(result: T | Awaitable[T]) -> T:
    """What a strategy answered: the in-memory ones answer at once, the async storages' are awaited."""
    return await result if inspect.isawaitable(result) else result


def sliding_room(
    limit: int, expiry: float, previous: int, previous_ttl: float, current: int, current_ttl: float
) -> tuple[int, float]:
    """A sliding-window counter's (remaining, seconds until one more event fits), from its two windows.

    The count is `previous × previous_ttl / expiry + current`, where
    previous_ttl is the time left in the current window (the share of the
    previous window still overlapping); an event fits while it is under the limit.
    """
    weighted = previous * previous_ttl / expiry + current
    remaining = max(0, limit - math.floor(weighted))
    if weighted < limit:
        return remaining, 0.0
    if current < limit:
        # The previous window's share slides out first.
        return remaining, previous_ttl - (limit - current) * expiry / previous
    # Full on its own: once the current window ends it is the previous one, sliding out.
    window_ends = current_ttl - expiry if current else previous_ttl
    return remaining, window_ends + expiry * (1 - limit / current)


def parse(value: str) -> list[RateLimitItem]:
    """ "5/minute;20/hour" as limit items, strictest window first."""
    return sorted(parse_many(value), key=lambda item: item.get_expiry())
