"""A small circuit breaker for one provider: skip it for a while after it keeps failing.

After `failures` "unavailable" answers to starts in a row (`ProviderUnavailable`,
its `ProviderRefused`, `ProviderUnauthorized`) the provider is skipped for
`seconds`. Then one start tries it again (the others keep skipping it while
that trial runs): an answer closes the breaker, another failure opens it for
`seconds` more. Any answer that is not an outage (a call placed, a number
refused, `RecipientLimited`) resets the count.

State lives in this process only: with several workers each learns on its own,
so a dead provider costs each worker `failures` starts.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from datetime import datetime, timedelta

log = logging.getLogger(__name__)


class Breaker:
    """Whether a provider is worth asking now, from its last answers."""

    def __init__(self, name: str, failures: int, seconds: float, clock: Callable[[], datetime]) -> None:
        self.name = name
        self._limit = failures
        self._pause = timedelta(seconds=seconds)
        self._clock = clock
        self._failures = 0
        #: while it is open: until when it is skipped
        self._until: datetime | None = None

    def allows(self) -> bool:
        """Ask the provider now? Past the pause, True once: the trial holds the pause for the others."""
        if self._until is None:
            return True
        now = self._clock()
        if now < self._until:
            return False
        self._until = now + self._pause
        log.info("provider %s: trying it again after its pause", self.name)
        return True

    def wait(self) -> int | None:
        """Whole seconds until the provider is tried again, while it is being skipped; else None."""
        if self._until is None:
            return None
        left = (self._until - self._clock()).total_seconds()
        return max(1, math.ceil(left)) if left > 0 else None

    def succeeded(self) -> None:
        """The provider answered (whatever it said, it was not an outage)."""
        if self._until is not None:
            log.warning("provider %s answers again: no longer skipped", self.name)
        self._failures, self._until = 0, None

    def failed(self) -> None:
        """The provider was unavailable."""
        self._failures += 1
        if self._failures >= self._limit:
            if self._until is None:
                log.warning(
                    "provider %s: %d unavailable answers in a row; skipping it for %d s",
                    self.name,
                    self._failures,
                    self._pause.total_seconds(),
                )
            self._until = self._clock() + self._pause
