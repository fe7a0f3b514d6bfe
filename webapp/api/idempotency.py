"""`Idempotency-Key` on a create: a retried request gets the first answer, and never a second call.

The key is claimed in the database (a row, unique per client and key) before
the flow is asked to call, so of two requests with one key, however they
race and in however many processes, only one reaches the flow; the other is
answered 409 `idempotency_in_progress` with `Retry-After`, at once (it does
not wait). The first answer of a call placed (201) is stored and replayed for
`LIFETIME`. A create refused before any call was placed releases the key, so
a retry once the refusal has passed (a limit's wait) is judged afresh. The
same key with another body is 422 `idempotency_mismatch`.

A request that dies between its claim and its answer (the process killed)
leaves the key answering 409 until it expires: whether it placed a call
can't be known, and a second call is what the key is there to prevent.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from webapp.api.problems import ApiRefusal
from webapp.models import IDEMPOTENCY_KEY_LENGTH, ApiIdempotencyKey
from webapp.outcomes import Outcome

HEADER = "idempotency-key"
LIFETIME = timedelta(hours=24)
MAX_KEY = IDEMPOTENCY_KEY_LENGTH


@dataclass(frozen=True, slots=True)
class Replay:
    """The first answer to a key: what to send again."""

    status: int
    body: dict[str, Any]


def fingerprint(body: dict[str, Any]) -> str:
    """SHA-256 of the JSON object as parsed, so that spacing and field order don't make it another body."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


def read_key(value: str | None) -> str | None:
    """The header's key, or None if none was sent; invalid_idempotency_key if it can't be one."""
    if value is None:
        return None
    if not 1 <= len(value) <= MAX_KEY or not all("\x21" <= ch <= "\x7e" for ch in value):
        raise ApiRefusal(
            Outcome.INVALID_IDEMPOTENCY_KEY,
            f"An Idempotency-Key is 1 to {MAX_KEY} visible ASCII characters, e.g. a UUID.",
        )
    return value


class IdempotencyKeys:
    """Claim, answer and release keys."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], clock: Callable[[], datetime]) -> None:
        self._sessions = sessions
        self._clock = clock

    async def claim(self, client_id: str, key: str, body_hash: str) -> Replay | None:
        """Claim the key for this request (None), or the first answer to replay; raises if it can't be used now."""
        now = self._clock()
        for _ in range(2):  # a second time only after deleting an expired row
            async with self._sessions() as session:
                session.add(
                    ApiIdempotencyKey(
                        client_id=client_id, key=key, body_hash=body_hash, created_at=now, expires_at=now + LIFETIME
                    )
                )
                try:
                    await session.commit()
                    return None
                except IntegrityError:
                    await session.rollback()
                row = await session.scalar(
                    select(ApiIdempotencyKey).where(
                        ApiIdempotencyKey.client_id == client_id, ApiIdempotencyKey.key == key
                    )
                )
                if row is None:
                    continue  # released meanwhile: claim it now
                if row.expires_at <= now:
                    await session.execute(
                        delete(ApiIdempotencyKey).where(
                            ApiIdempotencyKey.id == row.id, ApiIdempotencyKey.expires_at <= now
                        )
                    )
                    await session.commit()
                    continue
                if row.body_hash != body_hash:
                    raise ApiRefusal(Outcome.IDEMPOTENCY_MISMATCH)
                if row.status is None or row.response is None:
                    raise ApiRefusal(Outcome.IDEMPOTENCY_IN_PROGRESS, retry_after=1)
                return Replay(row.status, row.response)
        raise ApiRefusal(Outcome.IDEMPOTENCY_IN_PROGRESS, retry_after=1)

    async def answer(self, client_id: str, key: str, status: int, body: dict[str, Any]) -> None:
        """Store the first answer to a claimed key."""
        async with self._sessions() as session:
            await session.execute(
                update(ApiIdempotencyKey)
                .where(ApiIdempotencyKey.client_id == client_id, ApiIdempotencyKey.key == key)
                .values(status=status, response=body)
            )
            await session.commit()

    async def release(self, client_id: str, key: str) -> None:
        """Give a claimed key back: no call was placed, so a retry may try again."""
        async with self._sessions() as session:
            await session.execute(
                delete(ApiIdempotencyKey).where(
                    ApiIdempotencyKey.client_id == client_id,
                    ApiIdempotencyKey.key == key,
                    ApiIdempotencyKey.status.is_(None),
                )
            )
            await session.commit()
