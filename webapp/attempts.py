"""Writing the attempts log: one row per decision of the flow, allowed or refused.

A row that stands alone goes through the app's one AttemptWriter (group
commit; a flood of identical refusals folded into one row with a count); a row
that belongs with a change of a verification is added to that transaction.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from webapp.attempt_writer import AttemptWriter
from webapp.models import Attempt, Verification
from webapp.outcomes import Outcome


def printable(raw: str, limit: int = 64) -> str:
    """What a person typed, made safe to store: truncated, no control characters."""
    text = raw[: limit * 2].encode("utf-8", "replace").decode("utf-8")
    text = "".join(ch for ch in text if unicodedata.category(ch)[0] != "C")
    return text[:limit]


class AttemptLog:
    """Builds attempts rows, and writes those that stand alone."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        clock: Callable[[], datetime],
        client_id: str | None = None,
        via: str | None = None,
        *,
        writer: AttemptWriter | None = None,
    ) -> None:
        self._sessions = sessionmaker
        self._clock = clock
        #: the hand-off's site every row names unless told otherwise (None: the standalone page)
        self._client_id = client_id
        #: the door every row names: "api", or None for the page
        self._via = via
        #: the app's writer; without one (a log used outside the app) each row commits itself
        self._writer = writer or AttemptWriter(sessionmaker)

    def for_client(self, client_id: str | None, via: str | None = None) -> AttemptLog:
        """This log, its rows naming `client_id` (a hand-off's site, or a JSON API client) and `via`."""
        return AttemptLog(self._sessions, self._clock, client_id, via, writer=self._writer)

    async def write(self, kind: str, outcome: Outcome, ip: str, **fields: object) -> None:
        """One row (or one more request on an identical refusal's row), committed before this returns."""
        await self._writer.write(self.row(kind, outcome, ip, **fields))  # type: ignore[arg-type]  # the columns as keywords; the model checks them

    def row(
        self,
        kind: str,
        outcome: Outcome,
        ip: str,
        *,
        number: str | None = None,
        raw_input: str | None = None,
        region: str | None = None,
        verification: Verification | None = None,
        provider_ref: str | None = None,
        latency: int | None = None,
        at: datetime | None = None,
        client_id: str | None = None,
        reason: str | None = None,
        provider: str | None = None,
    ) -> Attempt:
        """A row for one decision (now, or `at`); what is not given is taken from the verification."""
        if verification is not None:
            number = number or verification.number
            region = region or verification.country
            provider_ref = provider_ref or verification.provider_ref
            provider = provider or verification.provider
        return Attempt(
            created_at=at or self._clock(),
            kind=kind,
            number=number,
            raw_input=raw_input if number is None else None,
            region=region,
            ip=ip,
            channel="tts",
            outcome=str(outcome),  # the plain string, as the column holds it
            verification_id=verification.id if verification is not None else None,
            provider=provider,
            provider_ref=provider_ref,
            provider_latency_ms=latency,
            client_id=client_id or self._client_id,
            reason=printable(reason, 120) if reason else None,
            count=1,
            via=self._via,
        )
