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

Which strategy counts an item depends on its size: an exact moving window
for up to SMALL_LIMIT events per window (`limits` keeps one entry per event,
so its cost grows with the limit), and `limits`' sliding-window counter above
that (two counters per window whatever the limit; it weighs the previous
window's count by how much of it still overlaps, an approximation that errs
by at most a fraction of the previous window's count as it slides).

`memory://` is `webapp.counters`' storage, on the app's clock, and is called
inline: a hit takes microseconds, less than a hop to a worker thread.
slowapi's route decorator would talk to Redis synchronously on the event
loop, which a round trip must not block, so a Redis storage is called in a
worker thread, through the same Limiter and storage.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple, TypeVar

import anyio.to_thread
from limits import RateLimitItem, parse_many
from limits.strategies import RateLimiter, SlidingWindowCounterRateLimiter
from slowapi import Limiter
from starlette.requests import Request

from webapp import counters
from webapp.client_ip import limit_key

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
        self.inline = storage_url.partition("://")[0] == "memory"
        if self.inline:
            uri, options = f"{counters.SCHEME}://", {"now": now}
        else:
            uri = storage_url
            options = {"socket_connect_timeout": 1.0, "socket_timeout": 1.0} if storage_url.startswith("redis") else {}
        self.limiter = Limiter(
            key_func=_unused_key,
            storage_uri=uri,
            storage_options=options,
            strategy="moving-window",
            key_prefix=key_prefix,
        )
        self._moving = self.limiter.limiter
        self._sliding = SlidingWindowCounterRateLimiter(self._moving.storage)
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
        return await self._run(self._hit_all, counters)

    async def blocked(self, items: Sequence[RateLimitItem], *key: str) -> int | None:
        """Seconds to wait if one of `items` is full for `key` already, else None; counts nothing."""
        full = await self.blocked_all(Counter(items, key))
        return full.wait if full else None

    async def blocked_all(self, *counters: Counter) -> Full | None:
        """Which counters are full already, if any; counts nothing."""
        return await self._run(self._full, counters)

    async def healthy(self) -> bool:
        """The storage answers (a ping, for Redis)."""
        try:
            return bool(await self._run(self._moving.storage.check))
        except LimiterUnavailable:
            return False

    async def stats(self, items: Sequence[RateLimitItem], *key: str) -> list[tuple[RateLimitItem, int, float]]:
        """For each item: (item, remaining, reset time as a timestamp), for the operators' pages."""
        return await self._run(self._stats, items, key)

    async def _run(self, work: Callable[..., T], *args: object) -> T:
        try:
            if self.inline:
                return work(*args)
            return await anyio.to_thread.run_sync(work, *args)
        except Exception as exc:
            # Whatever the storage raised (connection refused, timeout, …): the
            # caller decides between failing closed and failing open.
            log.error("rate limit storage unavailable: %s: %s", type(exc).__name__, exc)
            raise LimiterUnavailable(str(exc)) from exc

    def strategy(self, item: RateLimitItem) -> RateLimiter:
        """The exact moving window for a small limit, the sliding-window counter for a large one."""
        return self._moving if item.amount <= SMALL_LIMIT else self._sliding

    def _stats(self, items: Sequence[RateLimitItem], key: tuple[str, ...]) -> list[tuple[RateLimitItem, int, float]]:
        found = []
        for item in items:
            if item.amount <= SMALL_LIMIT:
                reset, remaining = self._moving.get_window_stats(item, self._prefix, *key)
            else:
                window = self._sliding.storage.get_sliding_window(  # type: ignore[attr-defined]
                    item.key_for(self._prefix, *key), item.get_expiry()
                )
                remaining, wait = sliding_room(item.amount, item.get_expiry(), *window)
                reset = self._now() + wait
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
        for index, (items, key) in enumerate(counters):
            for item in items:
                if not self.strategy(item).hit(item, self._prefix, *key):
                    # Lost the last slot to a concurrent request since the look above.
                    lost = self._full(counters)
                    return lost or Full(tuple(1 if i == index else None for i in range(len(counters))))
        return None


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
    """"5/minute;20/hour" as limit items, strictest window first."""
    return sorted(parse_many(value), key=lambda item: item.get_expiry())
