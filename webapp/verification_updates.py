"""The changes of a verification that race, each one conditional UPDATE inside a transaction of webapp.verifications.

Two requests for one verification (a double click, two tabs, two workers)
cannot undo each other, on PostgreSQL and on SQLite alike. Those of a check
also hold only while the verification is on the call the check read (its
provider_ref): a newer call is not the check's to change. Where the UPDATE
finds nothing, the row is re-read into `verification`. Each function runs in
the session it is given; none opens or commits one.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from webapp.db import affected
from webapp.models import Verification


async def record_call(session: AsyncSession, verification: Verification) -> str:
    """Write down the call `verification` is now on (its provider_ref, calls, expiry …).

    "recorded"; "recorded already" (an earlier try's commit went through,
    its answer was lost); or "gone": the verification was closed meanwhile
    (another tab), and it stays closed.
    """
    ref = verification.provider_ref
    result = await session.execute(
        update(Verification)
        .where(
            Verification.id == verification.id,
            Verification.status == "pending",
            or_(Verification.provider_ref.is_(None), Verification.provider_ref != ref),
        )
        .values(
            provider=verification.provider,
            provider_ref=ref,
            calls=verification.calls,
            code_attempts=verification.code_attempts,
            last_call_at=verification.last_call_at,
            expires_at=verification.expires_at,
        )
    )
    if affected(result):
        return "recorded"
    status = await session.scalar(select(Verification.status).where(Verification.id == verification.id))
    if status == "pending":
        return "recorded already"
    await reread(session, verification, "cancelled")
    return "gone"


async def mark_verified(session: AsyncSession, verification: Verification, now: datetime) -> bool:
    """Set verified; True if this call did it (verified_at stays the first, never moves)."""
    result = await session.execute(
        update(Verification)
        .where(
            Verification.id == verification.id,
            Verification.status == "pending",
            Verification.provider_ref == verification.provider_ref,
        )
        .values(status="verified", verified_at=now)
    )
    if affected(result):
        verification.status, verification.verified_at = "verified", now
        return True
    await reread(session, verification)
    return False


async def close(session: AsyncSession, verification: Verification, status: str, *, on_call: str | None = None) -> str:
    """Close a pending verification as `status` (only while on call `on_call`, if given); the status afterwards."""
    values: dict[str, object] = {"status": status}
    if verification.provider_ref:
        values["provider_ref"] = verification.provider_ref
    if verification.provider:
        values["provider"] = verification.provider
    where = [Verification.id == verification.id, Verification.status == "pending"]
    if on_call is not None:
        where.append(Verification.provider_ref == on_call)
    result = await session.execute(update(Verification).where(*where).values(**values))
    if not affected(result):
        return await reread(session, verification, status)
    verification.status = status
    return status


async def count_wrong_code(session: AsyncSession, verification: Verification, limit: int) -> str:
    """Count a wrong code on the call the check read, failing it at `limit`; the status afterwards."""
    ref = verification.provider_ref
    attempts = await session.scalar(
        update(Verification)
        .where(Verification.id == verification.id, Verification.status == "pending", Verification.provider_ref == ref)
        .values(code_attempts=Verification.code_attempts + 1)
        .returning(Verification.code_attempts)
    )
    if attempts is None:  # closed, verified or called again by a concurrent request
        return await reread(session, verification)
    verification.code_attempts = attempts
    if attempts >= limit:
        return await close(session, verification, "failed", on_call=ref)
    return "pending"


async def reread(session: AsyncSession, verification: Verification, default: str | None = None) -> str:
    """Another request changed the row: take it as it now stands; its status (`default` if it is gone)."""
    row = (
        await session.execute(
            select(
                Verification.status,
                Verification.verified_at,
                Verification.provider_ref,
                Verification.calls,
                Verification.code_attempts,
            ).where(Verification.id == verification.id)
        )
    ).first()
    if row is not None:
        verification.status, verification.verified_at = row.status, row.verified_at
        verification.provider_ref, verification.calls, verification.code_attempts = (
            row.provider_ref,
            row.calls,
            row.code_attempts,
        )
    elif default is not None:
        verification.status = default
    return verification.status
