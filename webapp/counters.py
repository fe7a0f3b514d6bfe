"""The in-process counters' storage: a `limits` storage that costs microseconds and no thread.

`limits`' own memory storage keeps one entry per hit for a moving window (so
memory and time grow with the limit), and runs an expiry timer thread that
holds the storage lock while it scans every key; its clock is `time.time`.
This one, registered as `voice2fa-memory://` (what `memory://` means to
`webapp.limits`), expires lazily instead: every key is on a heap by the time
it may be dropped, and each call drops what is due, so idle keys cost nothing
and no thread is needed. A moving window keeps at most `limit` timestamps
(`webapp.limits` uses it only for small limits); the sliding-window counter
(two integers per window, whatever the limit) serves the large ones. Time is
the app's clock (`now`), so tests move it.

It is called inline on the event loop: one lock, never contended across an
await, held for a few dictionary operations.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections import deque
from collections.abc import Callable
from math import floor

from limits.storage.base import MovingWindowSupport, SlidingWindowCounterSupport, Storage, TimestampedSlidingWindow

SCHEME = "voice2fa-memory"
#: Keys dropped per call at most, so that one call after a quiet hour stays short; the rest wait for the next.
PURGE_BATCH = 64


class MemoryCounters(Storage, MovingWindowSupport, SlidingWindowCounterSupport, TimestampedSlidingWindow):
    """Counters and moving windows in this process's memory, expired lazily on the app's clock."""

    STORAGE_SCHEME = [SCHEME]  # noqa: RUF012 - limits' registry reads this class attribute, as its own storages declare it

    def __init__(
        self,
        uri: str | None = None,
        wrap_exceptions: bool = False,
        now: Callable[[], float] = time.time,
        **options: float | str | bool,
    ) -> None:
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)
        self._now = now
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        #: moving windows: the hits' times, oldest first, at most `limit` of them
        self._windows: dict[str, deque[float]] = {}
        #: when each key (counter or window) may be dropped
        self._expires: dict[str, float] = {}
        #: (when, key), pushed when a key is made; a key found living longer is pushed again
        self._heap: list[tuple[float, str]] = []

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:  # pragma: no cover - nothing raises
        return ValueError

    def __len__(self) -> int:
        """Keys held (counters and windows), for tests and the profiler."""
        return len(self._expires)

    # -- expiry ------------------------------------------------------------

    def _purge(self, now: float) -> None:
        heap = self._heap
        for _ in range(PURGE_BATCH):
            if not heap or heap[0][0] > now:
                return
            _when, key = heapq.heappop(heap)
            expires = self._expires.get(key)
            if expires is None:
                continue  # cleared already
            if expires > now:
                heapq.heappush(heap, (expires, key))  # used since: look again then
                continue
            self._drop(key)

    def _drop(self, key: str) -> None:
        self._counts.pop(key, None)
        self._windows.pop(key, None)
        self._expires.pop(key, None)

    def _keep_until(self, key: str, when: float) -> None:
        if key not in self._expires:
            heapq.heappush(self._heap, (when, key))
        self._expires[key] = when

    def _live_count(self, key: str, now: float) -> int:
        if self._expires.get(key, now) <= now:
            self._drop(key)
            return 0
        return self._counts.get(key, 0)

    # -- counters (the sliding-window counter's windows) -------------------

    def incr(self, key: str, expiry: float, amount: int = 1) -> int:
        with self._lock:
            now = self._now()
            self._purge(now)
            count = self._live_count(key, now) + amount
            self._counts[key] = count
            if count == amount:
                self._keep_until(key, now + expiry)
            return count

    def decr(self, key: str, amount: int = 1) -> int:
        with self._lock:
            now = self._now()
            count = max(self._live_count(key, now) - amount, 0)
            if key in self._counts:
                self._counts[key] = count
            return count

    def get(self, key: str) -> int:
        with self._lock:
            return self._live_count(key, self._now())

    def get_expiry(self, key: str) -> float:
        with self._lock:
            return self._expires.get(key, self._now())

    def clear(self, key: str) -> None:
        with self._lock:
            self._drop(key)

    def check(self) -> bool:
        return True

    def reset(self) -> int | None:
        with self._lock:
            held = len(self._expires)
            self._counts.clear()
            self._windows.clear()
            self._expires.clear()
            self._heap.clear()
            return held

    # -- moving window -----------------------------------------------------

    def _window(self, key: str, limit: int, expiry: float, now: float) -> deque[float]:
        """The key's hits still inside the window (a hit at t counts until t + expiry)."""
        window = self._windows.get(key)
        if window is None or window.maxlen != limit:
            window = self._windows[key] = deque(window or (), maxlen=limit)
        while window and window[0] + expiry <= now:
            window.popleft()
        return window

    def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        if amount > limit:
            return False
        with self._lock:
            now = self._now()
            self._purge(now)
            window = self._window(key, limit, expiry, now)
            if len(window) + amount > limit:
                return False
            window.extend([now] * amount)
            self._keep_until(key, now + expiry)
            return True

    def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        """(the oldest hit in the window, or now if none; how many hits it holds)."""
        with self._lock:
            now = self._now()
            self._purge(now)  # refused requests only look: they purge too
            if key not in self._windows:
                return now, 0
            window = self._window(key, limit, expiry, now)
            return (window[0], len(window)) if window else (now, 0)

    # -- sliding-window counter (as limits' memory storage, on this clock) --

    def _sliding_window(self, key: str, expiry: int, now: float) -> tuple[int, float, int, float]:
        previous_key, current_key = self.sliding_window_keys(key, expiry, now)
        previous = self._live_count(previous_key, now)
        current = self._live_count(current_key, now)
        previous_ttl = 0.0 if previous == 0 else (1 - (((now - expiry) / expiry) % 1)) * expiry
        current_ttl = (1 - ((now / expiry) % 1)) * expiry + expiry
        return previous, previous_ttl, current, current_ttl

    def acquire_sliding_window_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        if amount > limit:
            return False
        with self._lock:
            now = self._now()
            self._purge(now)
            previous, previous_ttl, current, _ = self._sliding_window(key, expiry, now)
            if floor(previous * previous_ttl / expiry + current) + amount > limit:
                return False
            current_key = self.sliding_window_keys(key, expiry, now)[1]
            self._counts[current_key] = current + amount
            if current == 0:
                self._keep_until(current_key, now + 2 * expiry)
            return True

    def get_sliding_window(self, key: str, expiry: int) -> tuple[int, float, int, float]:
        with self._lock:
            now = self._now()
            self._purge(now)
            return self._sliding_window(key, expiry, now)

    def clear_sliding_window(self, key: str, expiry: int) -> None:
        with self._lock:
            for window_key in self.sliding_window_keys(key, expiry, self._now()):
                self._drop(window_key)
