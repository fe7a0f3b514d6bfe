"""The guard: everything that can refuse a call runs here, before the provider.

Order, cheapest and most certain first: the deny list, number policy, the
circuit breaker, then the counters (per IP, per number, overall, per
country). Counters are only spent on calls that policy would allow, and a
refused try spends none (`webapp.limits`); the wait a refusal tells is the
real one: the longest of everything that holds. Messages help an honest
person without naming the rule that fired.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from webapp import circuit, policy
from webapp.deny_cache import DenyListCache
from webapp.errors import Refusal
from webapp.limits import Counter, Full, LimiterUnavailable, RateLimits, parse
from webapp.outcomes import Outcome
from webapp.phone import PhoneNumber
from webapp.settings import Settings
from webapp.waits import seconds_until, wait_text

log = logging.getLogger(__name__)

CIRCUIT = "We can't call numbers in this country right now. Please try again later."
CIRCUIT_RANGE = "We can't call this number right now. Please try again later."
#: The counters' key names: the guard's, read by the operators' pages through the *_counter methods.
NUMBER, START_IP, CHECK_IP = "number", "start-ip", "check-ip"


class Guard:
    """Admit or refuse: a Refusal names the outcome for the attempts log."""

    def __init__(
        self,
        settings: Settings,
        limits: RateLimits,
        sessionmaker: async_sessionmaker[AsyncSession],
        clock: Callable[[], datetime],
    ) -> None:
        self._settings = settings
        self._limits = limits
        self._sessions = sessionmaker
        self._clock = clock
        #: the operators' deny list, read from memory (refreshed at most once a second)
        self.deny_list = DenyListCache(sessionmaker, now=lambda: clock().timestamp())
        self._judging = circuit.Judging()
        #: the counters' limits, public for the operators' pages
        self.start_ip_limits = parse(settings.limit_start_per_ip)
        self.check_ip_limits = parse(settings.limit_check_per_ip)
        self.number_limits = parse(settings.limit_start_per_number)
        self._global = parse(settings.limit_calls_global)
        self._per_country = parse(settings.limit_calls_per_country)
        self.api_client_limits = parse(settings.limit_api_calls_per_client)

    async def admit_ip(self, kind: str, ip: str) -> None:
        """The client's own limits, before its request body is even read."""
        key = self._limits.client_key(ip)
        if kind == "check":
            full = await self._hit(self.check_ip_counter(key))
            if full:
                raise Refusal(
                    Outcome.BLOCKED_IP,
                    f"Too many tries. Please wait {wait_text(full.wait)} and try again.",
                    retry_after=full.wait,
                )
            return
        if await self.deny_list.ip_denied(ip):
            raise Refusal(Outcome.BLOCKED_DENYLIST)
        full = await self._hit(self.start_ip_counter(key))
        if full:
            raise Refusal(
                Outcome.BLOCKED_IP,
                f"Too many calls requested from your network. Try again in {wait_text(full.wait)}.",
                retry_after=full.wait,
            )

    async def check_number(self, number: PhoneNumber) -> None:
        """Deny list, number policy and the circuit breaker (the number's range, its country): no counter spent."""
        now = self._clock()
        if await self.deny_list.number_denied(number.e164):
            raise Refusal(Outcome.BLOCKED_DENYLIST, field="phone")
        policy.check_number(number, self._settings)
        async with self._sessions() as session:
            ticket = self._judging.ticket(number.region)
            stopped = await circuit.open_break(session, number.region, number.e164, now)
            if stopped is None and await self._judging.judge(
                number.region,
                now,
                ticket,
                lambda: circuit.trip_if_pumped(session, number.region, now, self._settings),
            ):
                # Looked at again after a judging, whatever it found: a break another request
                # opened meanwhile has taken its calls out of what was judged here.
                stopped = await circuit.open_break(session, number.region, number.e164, now)
        if stopped is not None:
            wait = seconds_until(stopped.until, now)
            message = CIRCUIT if stopped.whole_country else CIRCUIT_RANGE
            raise Refusal(Outcome.BLOCKED_CIRCUIT, message, retry_after=wait, field="phone")

    async def count_call(self, number: PhoneNumber, api_client: str | None = None) -> None:
        """Spend the counters of one call (per number, overall, per country, per API client), or refuse spending none."""
        counters = self._call_counters(number)
        if api_client is not None:
            counters += (Counter(self.api_client_limits, ("api-client", api_client)),)
        full = await self._hit(*counters)
        if full is None:
            return
        if full.waits[0]:
            raise Refusal(Outcome.BLOCKED_NUMBER, retry_after=full.wait, field="phone")
        if api_client is not None and full.waits[3] and not any(full.waits[1:3]):
            raise Refusal(Outcome.BLOCKED_CLIENT, retry_after=full.wait)
        raise Refusal(Outcome.BLOCKED_GLOBAL, retry_after=full.wait)

    async def number_busy(self, number: PhoneNumber, live_until: datetime) -> Refusal:
        """blocked_pending, with the real wait: the live call's code runs out, and the counters have room."""
        wait = seconds_until(live_until, self._clock())
        try:
            full = await self._limits.blocked_all(*self._call_counters(number))
        except LimiterUnavailable:
            full = None  # refused anyway; the next try meets the limiter's state again
        return Refusal(Outcome.BLOCKED_PENDING, retry_after=max(wait, full.wait) if full else wait, field="phone")

    def _call_counters(self, number: PhoneNumber) -> tuple[Counter, ...]:
        return (
            self.number_counter(number.e164),
            Counter(self._global, ("global",)),
            Counter(self._per_country, ("country", number.region)),
        )

    def number_counter(self, e164: str) -> Counter:
        """The calls to one number."""
        return Counter(self.number_limits, (NUMBER, e164))

    def start_ip_counter(self, key: str) -> Counter:
        """The calls asked from one client (`RateLimits.client_key`)."""
        return Counter(self.start_ip_limits, (START_IP, key))

    def check_ip_counter(self, key: str) -> Counter:
        """The code checks from one client."""
        return Counter(self.check_ip_limits, (CHECK_IP, key))

    async def _hit(self, *counters: Counter) -> Full | None:
        try:
            return await self._limits.hit_all(*counters)
        except LimiterUnavailable:
            if self._settings.ratelimit_fail_open:
                log.warning(
                    "limiter storage down and RATELIMIT_FAIL_OPEN is set: admitting %s unlimited", counters[0].key[0]
                )
                return None
            raise Refusal(Outcome.LIMITER_UNAVAILABLE) from None
