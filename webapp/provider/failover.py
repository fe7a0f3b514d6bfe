"""The providers a site lists (PROVIDERS), in order, and failover between them.

A start goes to the first listed provider whose breaker (`webapp.provider.breaker`)
lets it be asked. When that provider's answer *proves* that no call was placed
(`ProviderRefused`: a refused connection, a 429, a 5xx in the provider's own
error body; or `ProviderUnauthorized`: 401/403), the next one is tried, and
each such step is reported to `on_failover` for its attempts row. Anything
else ends the start: a call placed, a number refused, or an answer that proves
nothing (a timeout, an answer cut off mid-way, a gateway's 502 page): then
the call may already be ringing, and a second provider would ring the phone
twice, so the person is told to try again instead.

Checks, fetches, resends and cancels go to the provider that placed the call
(`client(name)`), whatever the list says now.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import httpx

from webapp.errors import NotFound, ProviderError, ProviderRefused, ProviderUnauthorized, ProviderUnavailable
from webapp.provider import MESSAGEBIRD, NAMES, TWILIO, CallOptions, Provider, ProviderVerification
from webapp.provider.breaker import Breaker
from webapp.provider.messagebird import MessageBird
from webapp.provider.twilio import Twilio
from webapp.settings import Settings

#: The Twilio account and Verify Service the embedded sandbox plays (any of the right shape would do).
SANDBOX_TWILIO_ACCOUNT = "AC" + "0" * 32
SANDBOX_TWILIO_SERVICE = "VA" + "0" * 32


@dataclass(frozen=True, slots=True)
class Failure:
    """A provider that did not place the call, and why."""

    provider: str
    error: ProviderError
    latency: int  # ms

    @property
    def reason(self) -> str:
        """What an attempts row says of it: which error, in the provider's words."""
        return f"{type(self.error).__name__}: {self.error}"


@dataclass(frozen=True, slots=True)
class Placed:
    """The call a provider placed."""

    provider: str
    verification: ProviderVerification
    latency: int  # ms


class Unplaced(Exception):
    """No provider placed the call: the last one's failure, or None when every one is being skipped."""

    def __init__(self, failure: Failure | None, retry_after: int | None = None) -> None:
        self.failure = failure
        self.provider = failure.provider if failure else None
        self.error: ProviderError = failure.error if failure else ProviderUnavailable(SKIPPED)
        self.latency = failure.latency if failure else None
        #: seconds until a skipped provider is tried again (failure None)
        self.retry_after = retry_after
        super().__init__(str(self.error))

    @property
    def reason(self) -> str | None:
        """What the attempts row says: the outage, or that every provider is skipped; None for a refused request."""
        if self.failure is None:
            return SKIPPED
        return self.failure.reason if is_outage(self.error) else None


SKIPPED = "every provider skipped (breaker)"
OnFailover = Callable[[Failure], Awaitable[None]]


def proves_unplaced(error: ProviderError) -> bool:
    """The provider's answer proves that it placed no call."""
    return isinstance(error, (ProviderRefused, ProviderUnauthorized))


def is_outage(error: ProviderError) -> bool:
    """The answer says the provider can't serve anyone (not: this request or this number was refused)."""
    return isinstance(error, (ProviderUnavailable, ProviderUnauthorized))


class Providers:
    """The listed providers in order, each with its breaker; the clients of every provider configured."""

    def __init__(self, clients: Mapping[str, Provider], order: Sequence[str], breakers: Mapping[str, Breaker]) -> None:
        self._clients = dict(clients)
        self.order = tuple(order)
        self._breakers = dict(breakers)

    @classmethod
    def from_settings(
        cls, http: httpx.AsyncClient, settings: Settings, clock: Callable[[], datetime], *, sandbox_url: str | None
    ) -> Providers:
        """The clients for `settings` (all of them at `sandbox_url` in sandbox mode), breakers on `clock`."""
        deadline = settings.provider_deadline
        clients: dict[str, Provider] = {}
        if sandbox_url is not None:
            clients[MESSAGEBIRD] = MessageBird(http, "sandbox", sandbox_url, deadline=deadline)
            clients[TWILIO] = Twilio(
                http, SANDBOX_TWILIO_ACCOUNT, "sandbox", SANDBOX_TWILIO_SERVICE, sandbox_url, deadline=deadline
            )
        else:
            if settings.messagebird_api_key is not None:
                clients[MESSAGEBIRD] = MessageBird(
                    http, str(settings.messagebird_api_key), settings.messagebird_base_url, deadline=deadline
                )
            if settings.twilio_configured:
                clients[TWILIO] = Twilio.from_settings(http, settings)
        breakers = {
            name: Breaker(name, settings.provider_breaker_failures, settings.provider_breaker_seconds, clock)
            for name in NAMES
        }
        return cls(clients, settings.providers, breakers)

    def states(self) -> dict[str, str]:
        """Each listed provider: "ok", or "skipped" while its breaker holds it off."""
        return {name: "skipped" if self._breakers[name].wait() else "ok" for name in self.order}

    def client(self, name: str | None) -> Provider:
        """The provider `name`, which placed a call; NotFound if it is not configured (any more)."""
        found = self._clients.get(name or "")
        if found is None:
            raise NotFound(f"the provider {name!r} that placed this call is not configured", status_code=404)
        return found

    async def create(
        self,
        recipient: str,
        channel: str,
        options: CallOptions,
        *,
        on_failover: OnFailover,
        only: str | None = None,
    ) -> Placed:
        """Place the call at the first provider that will; `only`: at that provider (if configured), no failover.

        Raises `Unplaced` with the last provider's failure, or with none when
        every provider to try is being skipped.
        """
        names = (only,) if only in self._clients else tuple(name for name in self.order if name in self._clients)
        skipped: list[str] = []
        proven: Failure | None = None  # the last provider that proved it placed nothing
        for name in names:
            # Asked only when its turn comes: a breaker past its pause gives its one trial to this start.
            if not self._breakers[name].allows():
                skipped.append(name)
                continue
            if proven is not None:
                await on_failover(proven)
            started = time.perf_counter()
            try:
                created = await self._clients[name].create(recipient, channel, options)
            except ProviderError as error:
                failure = Failure(name, error, _ms(started))
                self._judge(name, error)
                if not proves_unplaced(error):
                    raise Unplaced(failure) from error
                proven = failure
                continue
            self._breakers[name].succeeded()
            return Placed(name, created, _ms(started))
        if proven is not None:
            raise Unplaced(proven) from proven.error
        return self._all_skipped(skipped)

    def _judge(self, name: str, error: ProviderError) -> None:
        if is_outage(error):
            self._breakers[name].failed()
        else:
            self._breakers[name].succeeded()

    def _all_skipped(self, skipped: Sequence[str]) -> Placed:
        waits = [wait for wait in (self._breakers[name].wait() for name in skipped) if wait is not None]
        raise Unplaced(None, retry_after=min(waits) if waits else None)


def _ms(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)
