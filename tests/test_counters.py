"""The in-process counters (`webapp.counters`) and how `webapp.limits` counts with them.

Time is the test's clock, handed to the storage: nothing sleeps.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import AsyncIterator

import pytest
from limits import parse_many
from limits.strategies import MovingWindowRateLimiter, SlidingWindowCounterRateLimiter

from tests.support import FakeClock, require
from webapp import counters
from webapp.counters import MemoryCounters
from webapp.limits import SMALL_LIMIT, Counter, LimiterUnavailable, RateLimits, parse, sliding_room


@pytest.fixture
def limits(clock: FakeClock) -> RateLimits:
    """In-memory limits on the test's clock."""
    return RateLimits("memory://", now=lambda: clock().timestamp())


def storage(limits: RateLimits) -> MemoryCounters:
    found = limits.storage
    assert isinstance(found, MemoryCounters)
    return found


async def test_memory_means_the_in_process_counters(limits: RateLimits) -> None:
    assert limits.inline
    assert isinstance(limits.storage, MemoryCounters)


def test_the_storage_starts_no_thread(clock: FakeClock) -> None:
    before = threading.active_count()
    store = MemoryCounters(now=lambda: clock().timestamp())
    assert store.acquire_entry("k", 5, 60)
    assert threading.active_count() == before, "no expiry timer thread"


async def test_a_hit_is_counted_on_the_event_loops_own_thread(
    limits: RateLimits, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = storage(limits)
    seen: list[threading.Thread] = []
    acquire = store.acquire_entry

    def recording(*args: object, **kwargs: object) -> bool:
        seen.append(threading.current_thread())
        return acquire(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "acquire_entry", recording)
    assert await limits.hit(parse("5/minute"), "ip", "203.0.113.1") is None
    assert seen == [threading.current_thread()], "no hop to a worker thread"


async def test_a_moving_window_follows_the_app_clock(limits: RateLimits, clock: FakeClock) -> None:
    items = parse("3/minute")
    for _ in range(3):
        assert await limits.hit(items, "ip", "a") is None
        clock.advance(10)
    assert await limits.hit(items, "ip", "a") == 30, "the first hit leaves the window 60 s after it"
    clock.advance(29)
    assert await limits.hit(items, "ip", "a") == 1
    clock.advance(1)
    assert await limits.hit(items, "ip", "a") is None, "a hit counts until exactly 60 s after it"
    assert await limits.hit(items, "ip", "a") == 10


async def test_a_window_keeps_no_more_entries_than_its_limit(clock: FakeClock) -> None:
    store = MemoryCounters(now=lambda: clock().timestamp())
    for _ in range(50):
        store.acquire_entry("k", 5, 60)
    assert len(store._windows["k"]) == 5  # the refused hits left nothing behind


async def test_idle_keys_are_dropped_lazily(limits: RateLimits, clock: FakeClock) -> None:
    items = parse("5/minute;20/hour")
    for n in range(1000):
        await limits.hit(items, "ip", f"198.51.{n // 256}.{n % 256}")
    assert len(storage(limits)) == 2000
    clock.advance(3601)
    for _ in range(2000 // counters.PURGE_BATCH + 1):
        await limits.hit(items, "ip", "192.0.2.1")  # refused after 5: a look purges too
    assert len(storage(limits)) == 2, "only the keys still in use are left"


async def test_a_key_used_again_is_not_dropped_while_it_counts(limits: RateLimits, clock: FakeClock) -> None:
    items = parse("2/minute")
    assert await limits.hit(items, "ip", "a") is None
    clock.advance(50)
    assert await limits.hit(items, "ip", "a") is None
    clock.advance(20)  # the first hit's expiry has passed, not the second's
    for _ in range(5):
        await limits.hit(parse("9/minute"), "ip", "other")  # purges what is due
    assert await limits.hit(items, "ip", "a") is None
    assert await limits.hit(items, "ip", "a") == 40, "the second hit still counts"


async def test_a_large_limit_costs_two_counters_not_an_entry_per_hit(limits: RateLimits, clock: FakeClock) -> None:
    items = parse("1000/hour")
    assert items[0].amount > SMALL_LIMIT
    for _ in range(1000):
        assert await limits.hit(items, "global") is None
    assert await limits.hit(items, "global") is not None, "the limit holds"
    assert len(storage(limits)) == 1
    assert not storage(limits)._windows, "no moving window was kept"


async def test_a_large_limit_slides(limits: RateLimits, clock: FakeClock) -> None:
    items = parse("200/minute")
    assert clock().timestamp() % 60 == 0, "the test's clock starts on a window's edge"
    for _ in range(200):
        assert await limits.hit(items, "global") is None
    assert await limits.hit(items, "global") == 60
    clock.advance(61)
    # The previous window's 200 now weigh 200 × 59/60 = 196.7: four more fit (196.7 + 3 < 200).
    for _ in range(4):
        assert await limits.hit(items, "global") is None
    wait = await limits.hit(items, "global")
    assert wait is not None and wait <= 1


async def test_a_refusal_by_a_large_limit_spends_nothing_beside_it(limits: RateLimits) -> None:
    small, large = Counter(parse("5/minute"), ("number", "n")), Counter(parse("101/minute"), ("global",))
    for _ in range(101):
        assert await limits.hit_all(Counter(parse("101/minute"), ("global",))) is None
    full = await limits.hit_all(small, large)
    assert full is not None and full.waits[0] is None and full.waits[1]
    assert (await limits.stats(small.items, *small.key))[0][1] == 5, "the small counter was not spent"


async def test_stats_of_a_large_limit_say_what_remains(limits: RateLimits, clock: FakeClock) -> None:
    items = parse("500/hour")
    for _ in range(120):
        await limits.hit(items, "country", "NL")
    [(_item, remaining, reset)] = await limits.stats(items, "country", "NL")
    assert remaining == 380 and reset == clock().timestamp()


@pytest.mark.parametrize(
    ("window", "expected"),
    [
        # (previous, previous_ttl, current, current_ttl) of a 10/60 s counter
        ((0, 0.0, 3, 100.0), (7, 0.0)),  # room
        ((12, 30.0, 2, 90.0), (2, 0.0)),  # 12 × 30/60 + 2 = 8
        ((12, 50.0, 2, 110.0), (0, 50 - 8 * 60 / 12)),  # 12 × 50/60 + 2 = 12: wait until 12 × t/60 < 8
        ((0, 0.0, 10, 100.0), (0, 40.0)),  # full in this window alone: it ends in 40 s, then 10 × (60 - t)/60 < 10
        ((4, 40.0, 20, 100.0), (0, 40 + 60 * (1 - 10 / 20))),  # twice over: half the next window
    ],
)
def test_a_sliding_counters_wait_is_the_real_one(
    window: tuple[int, float, int, float], expected: tuple[int, float]
) -> None:
    remaining, wait = sliding_room(10, 60, *window)
    assert (remaining, pytest.approx(wait)) == expected


def test_a_limit_up_to_100_is_counted_in_the_moving_window(limits: RateLimits) -> None:
    small, large = parse_many("100/minute;101/minute")
    assert isinstance(limits.strategy(small), MovingWindowRateLimiter)
    assert isinstance(limits.strategy(large), SlidingWindowCounterRateLimiter)


# -- on Redis: limits' async storage, on the event loop ---------------------------------------

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
async def on_redis() -> AsyncIterator[RateLimits]:
    """Limits on the Redis at 127.0.0.1:6379 under a prefix of this test's own, or a skip saying it is away."""
    probe = RateLimits(REDIS_URL)
    try:
        require(await probe.healthy(), f"Redis does not answer at {REDIS_URL}")
    finally:
        await probe.aclose()
    limits = RateLimits(REDIS_URL, key_prefix=f"v2fa-test-{uuid.uuid4().hex}")
    try:
        yield limits
    finally:
        await limits.aclose()


async def test_redis_counts_on_the_event_loop_without_a_thread(on_redis: RateLimits) -> None:
    assert not on_redis.inline
    before = threading.active_count()
    assert await on_redis.hit(parse("2/minute"), "ip", "a") is None
    assert threading.active_count() == before


async def test_redis_refuses_all_or_nothing(on_redis: RateLimits) -> None:
    small, large = Counter(parse("2/minute"), ("number", "n")), Counter(parse("150/minute"), ("global",))
    for _ in range(150):
        assert await on_redis.hit_all(Counter(large.items, large.key)) is None
    full = await on_redis.hit_all(small, large)
    assert full is not None and full.waits[0] is None and full.waits[1]
    assert (await on_redis.stats(small.items, *small.key))[0][1] == 2, "the small counter was not spent"
    assert (await on_redis.stats(large.items, *large.key))[0][1] == 0
    assert await on_redis.hit_all(small) is None
    assert await on_redis.hit_all(small) is None
    full = await on_redis.hit_all(small)
    assert full is not None and 55 <= full.wait <= 60


async def test_redis_away_is_limiter_unavailable() -> None:
    away = RateLimits("redis://127.0.0.1:1/0")
    try:
        assert not await away.healthy()
        with pytest.raises(LimiterUnavailable):
            await away.hit(parse("2/minute"), "ip", "a")
    finally:
        await away.aclose()
