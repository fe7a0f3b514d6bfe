"""The outbox: writes that must not be lost while the database is away.

A call the provider has placed costs money whether or not we manage to write
it down, and an unrecorded call leaves a verification without its provider
reference and the attempts log without its `sent` row. So its record is
retried at once a few times; if the database still does not take it, it is
kept here, in memory, and a background task owned by the app's lifespan
writes it as soon as the database answers again. Each write kept is logged at
ERROR with what it records (the verification and the provider reference), so
that if the process dies first, the log still accounts for the call.

Writes must be idempotent: one whose commit reached the database but whose
answer was lost is run again.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Awaitable, Callable

import anyio

from webapp.db import STORAGE_ERRORS

log = logging.getLogger(__name__)

Write = Callable[[], Awaitable[None]]

#: Pauses between the tries made at once, in seconds: a terminated connection
#: or a failover usually heals within them.
RETRY_PAUSES = (0.05, 0.2, 0.5)


class Outbox:
    """Writes retried now, then kept and flushed until the database takes them."""

    def __init__(self, *, pauses: tuple[float, ...] = RETRY_PAUSES, interval: float = 1.0) -> None:
        self._pauses = pauses
        #: seconds between tries of what is kept
        self._interval = interval
        self._kept: deque[tuple[str, Write]] = deque()
        self._wake = anyio.Event()

    def __len__(self) -> int:
        return len(self._kept)

    async def write(self, what: str, write: Write) -> bool:
        """Run `write`, retrying; False when the database would not take it and it is kept for later."""
        failure: BaseException | None = None
        for pause in (*self._pauses, None):
            try:
                await write()
                return True
            except STORAGE_ERRORS as exc:
                failure = exc
            if pause is not None:
                await anyio.sleep(pause)
        log.error(
            "%s: not recorded, the database did not answer (%s); kept to record when it is back",
            what,
            type(failure).__name__,
        )
        self._kept.append((what, write))
        self._wake.set()
        return False

    async def flush(self) -> int:
        """Write what is kept, oldest first, until one fails; how many are left."""
        while self._kept:
            what, write = self._kept[0]
            try:
                await write()
            except STORAGE_ERRORS:
                return len(self._kept)
            except Exception:  # a bug in a write must not stop the others, nor the task
                log.exception("%s: dropped, recording it failed", what)
            else:
                log.warning("%s: recorded, the database is back", what)
            self._kept.popleft()
        return 0

    async def run(self) -> None:
        """Flush whenever something is kept, every `interval` until it is all written (the lifespan's task)."""
        while True:
            await self._wake.wait()
            if await self.flush():
                await anyio.sleep(self._interval)
            else:
                self._wake = anyio.Event()

    async def close(self) -> None:
        """A last flush at shutdown; what is still kept is logged as lost."""
        await self.flush()
        for what, _write in self._kept:
            log.error("%s: LOST, the database did not come back before shutdown", what)
        self._kept.clear()
