"""What one hit_all costs the limiter: a worker thread over a sync storage vs the event loop.

    .venv/bin/python bench/limiter_storage.py [--redis redis://127.0.0.1:6379/0] [--requests 3000] [--concurrency 32]

Each "request" is what a refused start costs the limiter: hit_all on a
per-IP counter of two items (look at both, then hit both), from
`--concurrency` tasks at once on one event loop, for 200 client keys.
Prints requests/s and the process's CPU time per request for:

- Redis, limits' sync storage in a worker thread per request (what
  webapp.limits did before), and limits' async storage on the event loop
  (what it does now, `RateLimits("redis://…")`);
- memory, limits' own storage in a worker thread (before), and
  webapp.counters inline (now, `RateLimits("memory://")`).
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable

import anyio.to_thread
from limits.storage import MemoryStorage, RedisStorage
from limits.strategies import MovingWindowRateLimiter

from webapp.limits import Counter, RateLimits, parse

SMALL = parse("50/minute;100/hour")  # a per-IP limit; never full here, so every request looks and hits


def threaded(strategy: MovingWindowRateLimiter, prefix: str) -> Callable[[int], Awaitable[None]]:
    """The look-then-hit of one request, in a worker thread, as webapp.limits did it."""

    def work(i: int) -> None:
        key = (prefix, "start-ip", f"10.0.{i % 200}.1")
        for item in SMALL:
            strategy.get_window_stats(item, *key)
        for item in SMALL:
            strategy.hit(item, *key)

    return lambda i: anyio.to_thread.run_sync(work, i)


async def drive(work, requests: int, concurrency: int) -> tuple[float, float]:
    """(requests/s, CPU ms per request) for `requests` calls of `work(i)`, `concurrency` at a time."""
    queue = iter(range(requests))

    async def worker() -> None:
        for i in queue:
            await work(i)

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return requests / wall, cpu / requests * 1000


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    results = {}

    sync_redis = MovingWindowRateLimiter(RedisStorage(args.redis, socket_connect_timeout=1.0, socket_timeout=1.0))
    results["redis: sync storage, worker thread"] = await drive(
        threaded(sync_redis, prefix + "t"), args.requests, args.concurrency
    )
    on_loop = RateLimits(args.redis, key_prefix=prefix + "a")
    try:
        results["redis: async storage, event loop (now)"] = await drive(
            lambda i: on_loop.hit_all(Counter(SMALL, ("start-ip", f"10.0.{i % 200}.1"))),
            args.requests,
            args.concurrency,
        )
    finally:
        await on_loop.aclose()

    old_memory = MovingWindowRateLimiter(MemoryStorage())
    results["memory: limits' storage, worker thread"] = await drive(
        threaded(old_memory, prefix), args.requests, args.concurrency
    )
    inline = RateLimits("memory://", key_prefix=prefix + "m")
    results["memory: webapp.counters, inline (now)"] = await drive(
        lambda i: inline.hit_all(Counter(SMALL, ("start-ip", f"10.0.{i % 200}.1"))), args.requests, args.concurrency
    )

    print(f"{'counters':<42} {'req/s':>8} {'CPU ms/req':>11}")
    for name, (rate, cpu) in results.items():
        print(f"{name:<42} {rate:>8.0f} {cpu:>11.3f}")


if __name__ == "__main__":
    asyncio.run(main())
