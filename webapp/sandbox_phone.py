"""The sandbox phone: each browser sees the calls of its own session only.

In sandbox mode the page shows the text each call speaks, code included, so
one person's calls must never reach another's screen. The session cookie holds
only the verification's opaque id; the server keeps which calls (provider ids)
belong to it: its current one, and those of its attempts rows ("Call me again"
replaces the current one). The sandbox's calls are matched on those ids.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from webapp.models import Attempt, Verification


async def provider_refs(sessions: async_sessionmaker[AsyncSession], verification_id: str | None) -> frozenset[str]:
    """The provider ids of every call placed for this verification."""
    if not verification_id:
        return frozenset()
    of_attempts = select(Attempt.provider_ref).where(
        Attempt.verification_id == verification_id, Attempt.provider_ref.is_not(None)
    )
    current = select(Verification.provider_ref).where(
        Verification.id == verification_id, Verification.provider_ref.is_not(None)
    )
    async with sessions() as session:
        return frozenset(ref for ref in await session.scalars(of_attempts.union(current)) if ref)
