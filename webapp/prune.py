"""Retention: delete attempts and ended verifications older than a cutoff, a batch at a time.

The attempts log holds phone numbers and IP addresses, which are personal
data: keep them no longer than the operators need them (RETENTION by default).
The hand-off's authorization requests, codes and access tokens (numbers and
login hints among them), and the JSON API's idempotency keys (24 hours, with
the first answer, a number in it), are deleted as soon as they have expired,
whatever the cutoff: an expired one is of no use to anyone.

Each batch is its own short transaction, so no delete holds the table (or,
on SQLite, the single writer's lock) for long while the app keeps writing.
Attempts go first; then verifications, whose remaining attempts rows keep
their row with `verification_id` NULL (the foreign key says ON DELETE SET NULL).
A verification still waiting for its code is never deleted, however old.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, delete, func, inspect, not_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from webapp.db import affected
from webapp.models import (
    ApiIdempotencyKey,
    Attempt,
    Base,
    OidcAccessToken,
    OidcAuthorizationCode,
    OidcAuthorizationRequest,
    Verification,
)

RETENTION = "90d"
BATCH = 5_000
#: shorter ages than this need --force: they would delete the log of today's traffic
SHORTEST = timedelta(days=1)
LONGEST = timedelta(days=36_500)

UNITS = {"w": timedelta(weeks=1), "d": timedelta(days=1), "h": timedelta(hours=1), "m": timedelta(minutes=1)}
_DURATION = re.compile(r"(\d{1,9})([wdhm])")


@dataclass(frozen=True, slots=True)
class Pruned:
    """How many rows were (or, in a dry run, would be) deleted."""

    attempts: int
    verifications: int
    #: the hand-off's, expired: authorization requests, codes, access tokens
    authorization_requests: int = 0
    authorization_codes: int = 0
    access_tokens: int = 0
    #: the JSON API's, expired
    idempotency_keys: int = 0


def parse_duration(text: str) -> timedelta:
    """An age written as a whole number and a unit: 2w, 90d, 12h, 30m (minutes)."""
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None:
        raise ValueError(f"{text!r} is not an age: write a whole number and a unit, like 90d, 2w, 12h or 30m (minutes)")
    number, unit = int(match[1]), UNITS[match[2]]
    if number > LONGEST / unit:  # checked before multiplying: 999999999w is past what timedelta holds
        raise ValueError(f"{text!r} is more than {LONGEST.days} days")
    return number * unit


def _old_attempts(cutoff: datetime) -> ColumnElement[bool]:
    return Attempt.created_at < cutoff


def _old_verifications(cutoff: datetime, now: datetime) -> ColumnElement[bool]:
    # "Live" as the flow means it: pending and not yet expired. A pending row
    # past its expiry is an abandoned call, and its number is kept no longer.
    live = and_(Verification.status == "pending", Verification.expires_at > now)
    return and_(Verification.created_at < cutoff, not_(live))


#: The tables whose rows are over once `expires_at` has passed: the hand-off's, the API's idempotency keys.
EXPIRING = (OidcAuthorizationRequest, OidcAuthorizationCode, OidcAccessToken, ApiIdempotencyKey)


def _expired(
    model: type[OidcAuthorizationRequest | OidcAuthorizationCode | OidcAccessToken | ApiIdempotencyKey], now: datetime
) -> ColumnElement[bool]:
    return model.expires_at < now


async def count(sessions: async_sessionmaker[AsyncSession], cutoff: datetime, now: datetime) -> Pruned:
    """What `prune` would delete now (a dry run)."""
    async with sessions() as session:
        attempts = await session.scalar(select(func.count()).select_from(Attempt).where(_old_attempts(cutoff)))
        verifications = await session.scalar(
            select(func.count()).select_from(Verification).where(_old_verifications(cutoff, now))
        )
        expired = [
            await session.scalar(select(func.count()).select_from(model).where(_expired(model, now)))
            for model in EXPIRING
        ]
    return Pruned(attempts or 0, verifications or 0, *(n or 0 for n in expired))


async def prune(
    sessions: async_sessionmaker[AsyncSession], cutoff: datetime, now: datetime, batch: int = BATCH
) -> Pruned:
    """Delete attempts created before `cutoff`, then verifications created before it and no longer live.

    And the hand-off's requests, codes and access tokens, and the API's idempotency keys, that expired before `now`.
    """
    if batch < 1:
        raise ValueError("batch must be at least 1")
    # Attempts oldest first (ids grow with time, and the primary key finds them);
    # verification ids are random, so ordering by them would only cost a sort.
    attempts = await _delete_in_batches(sessions, Attempt, _old_attempts(cutoff), batch, ordered=True)
    verifications = await _delete_in_batches(
        sessions, Verification, _old_verifications(cutoff, now), batch, ordered=False
    )
    expired = [
        await _delete_in_batches(sessions, model, _expired(model, now), batch, ordered=False) for model in EXPIRING
    ]
    return Pruned(attempts, verifications, *expired)


async def _delete_in_batches(
    sessions: async_sessionmaker[AsyncSession],
    model: type[Base],
    old: ColumnElement[bool],
    batch: int,
    *,
    ordered: bool,
) -> int:
    [key] = inspect(model).primary_key
    ids = select(key).where(old).limit(batch)
    if ordered:
        ids = ids.order_by(key)
    # The condition again outside the subquery: PostgreSQL re-checks it on a
    # row another transaction changed meanwhile (a verification reopened).
    statement = delete(model).where(key.in_(ids), old).execution_options(synchronize_session=False)
    deleted = 0
    while True:
        async with sessions.begin() as session:
            result = await session.execute(statement)
        deleted += affected(result)
        if affected(result) < batch:
            return deleted
