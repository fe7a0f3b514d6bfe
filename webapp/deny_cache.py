"""The operators' deny list as the guard reads it: from memory, refreshed at most once a second.

Every start used to read `deny_entries` twice (the client's network, then
the number). Now each process keeps the list in memory and asks the database
at most once per REFRESH seconds whether it changed, by its signature: how
many entries, the highest id and the latest `created_at` (a removal lowers
the count, an addition raises the id or, where SQLite reuses a removed top
id, the time). Only a changed signature loads the entries again. So an
operator's deny or allow takes effect within REFRESH seconds in every
process (`voice2fa deny` included), and at once in the process whose
operators' page made it (`admin.deny` calls `changed()`).

One refresh at a time: requests that find the list stale while another is
loading it wait for that load rather than each asking the database. A
database that is away raises as before (a 503 upstream), it never turns into
"nothing is denied".
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from webapp.models import DenyEntry

#: Seconds a process trusts its copy before asking whether the list changed.
REFRESH = 1.0

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class DenyList:
    """The entries, shaped for lookups."""

    numbers: frozenset[str] = frozenset()
    prefixes: frozenset[str] = frozenset()
    networks: tuple[Network, ...] = ()
    longest_prefix: int = field(default=0)

    @classmethod
    def of(cls, entries: list[tuple[str, str]]) -> DenyList:
        prefixes = frozenset(value for kind, value in entries if kind == "prefix")
        return cls(
            numbers=frozenset(value for kind, value in entries if kind == "number"),
            prefixes=prefixes,
            networks=tuple(ipaddress.ip_network(value, strict=False) for kind, value in entries if kind == "ip"),
            longest_prefix=max(map(len, prefixes), default=0),
        )

    def number_denied(self, e164: str) -> bool:
        """The number itself, or a prefix of it (literally, digit by digit)."""
        if e164 in self.numbers:
            return True
        return any(e164[:end] in self.prefixes for end in range(2, min(len(e164), self.longest_prefix) + 1))

    def ip_denied(self, ip: str) -> bool:
        """The address is in a denied address or network (an IPv4-mapped IPv6 address as its IPv4 self)."""
        if not self.networks:
            return False
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return False
        address = getattr(address, "ipv4_mapped", None) or address
        return any(address in network for network in self.networks)


class DenyListCache:
    """The deny list of this process, checked against the database at most every `refresh` seconds."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        refresh: float = REFRESH,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sessions = sessions
        self._refresh = refresh
        #: seconds; the guard passes the app's clock (as the counters use), so tests move it by hand
        self._now = now
        self._list = DenyList()
        self._signature: tuple[object, ...] | None = None
        self._checked = -float("inf")
        #: bumped by changed(): a load that began before a change must not count as fresh
        self._generation = 0
        self._lock = anyio.Lock()
        #: signature queries and loads made, for tests and the profiler
        self.checks = 0
        self.loads = 0

    def changed(self) -> None:
        """The list changed in this process: look again on the next use."""
        self._generation += 1
        self._checked = -float("inf")

    async def ip_denied(self, ip: str) -> bool:
        """Whether `ip` is in a denied address or network."""
        return (await self.current()).ip_denied(ip)

    async def number_denied(self, e164: str) -> bool:
        """Whether `e164` is denied, itself or by a prefix."""
        return (await self.current()).number_denied(e164)

    async def current(self) -> DenyList:
        """The list, refreshed first if it is older than `refresh` seconds."""
        if self._fresh(self._now()):
            return self._list
        async with self._lock:
            started, generation = self._now(), self._generation
            if not self._fresh(started):  # not refreshed while this request waited
                await self._reload()
                if generation == self._generation:
                    self._checked = started
        return self._list

    def _fresh(self, now: float) -> bool:
        """Checked under `refresh` seconds ago; a clock set back since counts as stale, not as fresh for longer."""
        return 0 <= now - self._checked < self._refresh

    async def _reload(self) -> None:
        async with self._sessions() as session:
            self.checks += 1
            row = (
                await session.execute(
                    select(func.count(DenyEntry.id), func.max(DenyEntry.id), func.max(DenyEntry.created_at))
                )
            ).one()
            signature = tuple(row)
            if signature == self._signature:
                return
            entries = (await session.execute(select(DenyEntry.kind, DenyEntry.value))).all()
        self.loads += 1
        self._list = DenyList.of([(kind, value) for kind, value in entries])
        self._signature = signature
