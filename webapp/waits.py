"""Waits: the seconds until something, and the same wait in words.

Every "try again in …" is computed here, so the guard, the limits, the
verifications and the flow round a wait the same way: up, to whole seconds.
"""

from __future__ import annotations

import math
from datetime import datetime


def seconds_left(seconds: float, at_least: int = 1) -> int:
    """`seconds` rounded up to whole seconds, and never under `at_least`."""
    return max(at_least, math.ceil(seconds))


def seconds_until(when: datetime, now: datetime, at_least: int = 1) -> int:
    """Whole seconds from `now` until `when`, rounded up, and never under `at_least`."""
    return seconds_left((when - now).total_seconds(), at_least)


def wait_text(seconds: int) -> str:
    """A wait in words: "30 seconds", "7 minutes", "2 hours"."""
    if seconds < 60:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    if seconds < 3600:
        minutes = math.ceil(seconds / 60)
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    hours = math.ceil(seconds / 3600)
    return f"{hours} hour{'s' if hours != 1 else ''}"
