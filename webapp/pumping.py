"""What the circuit breaker calls pumped: the rules over a country's ended calls, no queries.

Calls look pumped when fewer than CIRCUIT_MIN_VERIFIED of them ended
verified and the unanswered ones came from CIRCUIT_MIN_NETWORKS client
networks to CIRCUIT_MIN_NUMBERS numbers. A range is the numbers alike but for
their last CIRCUIT_RANGE_DIGITS digits. Which calls are judged, and what a
trip opens, is webapp.circuit's.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from webapp.settings import Settings


@dataclass(frozen=True, slots=True)
class Call:
    """One ended, placed call as the breaker judges it."""

    number: str
    network: str
    verified: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Trip:
    """A break the judged calls call for, not yet written."""

    country: str
    scope: str
    verified_share: float
    window: int
    networks: int
    numbers: int


def number_range(e164: str, digits: int) -> str:
    """The range a number belongs to: its E.164 form without the last `digits` digits."""
    return e164[: max(2, len(e164) - digits)]


def pumped_ranges(country: str, calls: list[Call], settings: Settings) -> list[Trip]:
    """The ranges whose own calls look pumped."""
    by_range: dict[str, list[Call]] = defaultdict(list)
    for call in calls:
        by_range[number_range(call.number, settings.circuit_range_digits)].append(call)
    return [trip(country, prefix, group) for prefix, group in sorted(by_range.items()) if pumped(group, settings)]


def pumped(calls: list[Call], settings: Settings) -> bool:
    """Too few verified, and the unanswered ones spread over enough networks and numbers."""
    unanswered = [call for call in calls if not call.verified]
    return (
        verified_share(calls) < settings.circuit_min_verified
        and len({call.network for call in unanswered}) >= settings.circuit_min_networks
        and len({call.number for call in unanswered}) >= settings.circuit_min_numbers
    )


def verified_share(calls: list[Call]) -> float:
    """The share of the calls that ended verified."""
    return sum(call.verified for call in calls) / len(calls)


def trip(country: str, scope: str, calls: list[Call]) -> Trip:
    """The break these calls call for over `scope` (a range, or the country itself)."""
    unanswered = [call for call in calls if not call.verified]
    return Trip(
        country=country,
        scope=scope,
        verified_share=verified_share(calls),
        window=len(calls),
        networks=len({call.network for call in unanswered}),
        numbers=len({call.number for call in unanswered}),
    )
