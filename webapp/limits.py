"""Rate limits: counters per IP, per number, per country and overall.

One slowapi `Limiter` (moving window, storage from RATELIMIT_STORAGE_URL:
`memory://` in one process, `redis://…` across several) holds every counter;
its `limits` strategy does the counting. Each `hit` is atomic in the storage,
so limits stay exact when many processes start calls for one number at once.

slowapi's route decorator talks to the storage synchronously on the event
loop, which a Redis round trip must not block, so hits run here in a worker
thread instead, through the same Limiter and storage.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

import anyio.to_thread
from limits import RateLimitItem, parse_many
from slowapi import Limiter
from starlette.requests import Request

log = logging.getLogger(__name__)

T = TypeVar("T")


class LimiterUnavailable(Exception):
    """The limiter's storage did not answer."""


def _unused_key(request: Request) -> str:  # pragma: no cover - keys are passed explicitly
    raise RuntimeError("voice2fa passes limit keys explicitly")


class RateLimits:
    """Named limits over one limiter storage."""

    def __init__(
        self,
        storage_url: str,
        *,
        key_prefix: str = "voice2fa",
        now: Callable[[], float] = time.time,
    ) -> None:
        options = {"socket_connect_timeout": 1.0, "socket_timeout": 1.0} if storage_url.startswith("redis") else {}
        self.limiter = Limiter(
            key_func=_unused_key,
            storage_uri=storage_url,
            storage_options=options,
            strategy="moving-window",
            key_prefix=key_prefix,
        )
        self._prefix = key_prefix
        # The storage's own notion of now (tests move it), for Retry-After.
        self._now = now

    async def hit(self, items: Sequence[RateLimitItem], *key: str) -> int | None:
        """Count one event for `key` against every item; seconds to wait if one is full, else None."""
        return await self._in_thread(self._hit, items, key)

    async def blocked(self, items: Sequence[RateLimitItem], *key: str) -> int | None:
        """Seconds to wait if one of `items` is full for `key` already, else None; counts nothing."""
        return await self._in_thread(self._blocked, items, key)

    async def healthy(self) -> bool:
        """The storage answers (a ping, for Redis)."""
        try:
            return bool(await anyio.to_thread.run_sync(self.limiter.limiter.storage.check))
        except Exception as exc:  # whatever the storage raised, the answer is "no"
            log.error("rate limit storage unavailable: %s: %s", type(exc).__name__, exc)
            return False

    async def stats(self, items: Sequence[RateLimitItem], *key: str) -> list[tuple[RateLimitItem, int, float]]:
        """For each item: (item, remaining, reset time as a timestamp), for the operators' pages."""
        return await self._in_thread(self._stats, items, key)

    async def _in_thread(self, work: Callable[..., T], items: Sequence[RateLimitItem], key: tuple[str, ...]) -> T:
        try:
            return await anyio.to_thread.run_sync(work, items, key)
        except Exception as exc:
            # Whatever the storage raised (connection refused, timeout, …): the
            # caller decides between failing closed and failing open.
            log.error("rate limit storage unavailable: %s: %s", type(exc).__name__, exc)
            raise LimiterUnavailable(str(exc)) from exc

    def _blocked(self, items: Sequence[RateLimitItem], key: tuple[str, ...]) -> int | None:
        strategy = self.limiter.limiter
        for item in items:
            if not strategy.test(item, self._prefix, *key):
                return self._wait(item, key)
        return None

    def _stats(self, items: Sequence[RateLimitItem], key: tuple[str, ...]) -> list[tuple[RateLimitItem, int, float]]:
        strategy = self.limiter.limiter
        found = []
        for item in items:
            reset, remaining = strategy.get_window_stats(item, self._prefix, *key)
            found.append((item, remaining, reset))
        return found

    def _hit(self, items: Sequence[RateLimitItem], key: tuple[str, ...]) -> int | None:
        strategy = self.limiter.limiter
        for item in items:
            if not strategy.hit(item, self._prefix, *key):
                return self._wait(item, key)
        return None

    def _wait(self, item: RateLimitItem, key: tuple[str, ...]) -> int:
        """Whole seconds until `item`'s window for `key` has room again."""
        reset, _remaining = self.limiter.limiter.get_window_stats(item, self._prefix, *key)
        return max(1, math.ceil(reset - self._now()))



def parse(value: str) -> list[RateLimitItem]:
    """"5/minute;20/hour" as limit items, strictest window first."""
    return sorted(parse_many(value), key=lambda item: item.get_expiry())
