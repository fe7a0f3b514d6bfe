"""One-time authorization codes and opaque access tokens, stored only as their SHA-256.

Both are 256 random bits (`secrets.token_urlsafe(32)`), so a plain SHA-256 is
enough to keep a database dump from handing them out, and a lookup by digest
never compares the secret itself. A code is spent by one conditional UPDATE
(`used_at IS NULL`), atomic in the shared database, before anything else is
checked: of two exchanges at once, or of a thief and the client, only one
wins, and a second use also revokes the tokens the first one got
(RFC 6749 §4.1.2).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, update
from sqlalchemy.ext.asyncio import AsyncSession

from webapp.db import affected
from webapp.models import OidcAccessToken, OidcAuthorizationCode, OidcAuthorizationRequest


def digest(secret: str) -> str:
    """The stored form of a code or token."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def _issue(session: AsyncSession, row: Callable[[str], object]) -> str:
    """A new code or token, its row (`row(digest)`) added to the session; the secret itself."""
    secret = secrets.token_urlsafe(32)
    session.add(row(digest(secret)))
    return secret


def issue_code(
    session: AsyncSession,
    request: OidcAuthorizationRequest,
    *,
    number: str,
    auth_time: datetime,
    now: datetime,
    lifetime: int,
) -> str:
    """Add a code for `request` to the session (the caller commits); the code."""
    return _issue(
        session,
        lambda code_hash: OidcAuthorizationCode(
            code_hash=code_hash,
            client_id=request.client_id,
            redirect_uri=request.redirect_uri,
            scope=request.scope,
            nonce=request.nonce,
            code_challenge=request.code_challenge,
            number=number,
            auth_time=auth_time,
            created_at=now,
            expires_at=now + timedelta(seconds=lifetime),
        ),
    )


@dataclass(frozen=True)
class Spent:
    """The outcome of spending a code: the row, and whether this was its first use."""

    code: OidcAuthorizationCode | None
    first_use: bool


async def spend(session: AsyncSession, code: str, now: datetime) -> Spent:
    """Mark `code` used, atomically; a second use revokes what the first one got. Commits."""
    code_hash = digest(code)
    result = await session.execute(
        update(OidcAuthorizationCode)
        .where(OidcAuthorizationCode.code_hash == code_hash, OidcAuthorizationCode.used_at.is_(None))
        .values(used_at=now)
    )
    first_use = bool(affected(result))
    if not first_use:
        await session.execute(delete(OidcAccessToken).where(OidcAccessToken.code_hash == code_hash))
    await session.commit()
    return Spent(await session.get(OidcAuthorizationCode, code_hash), first_use)


def issue_access_token(session: AsyncSession, code: OidcAuthorizationCode, *, now: datetime, lifetime: int) -> str:
    """Add an access token for what `code` proved to the session (the caller commits); the token."""
    return _issue(
        session,
        lambda token_hash: OidcAccessToken(
            token_hash=token_hash,
            client_id=code.client_id,
            code_hash=code.code_hash,
            number=code.number,
            scope=code.scope,
            created_at=now,
            expires_at=now + timedelta(seconds=lifetime),
        ),
    )


async def find_access_token(session: AsyncSession, token: str, now: datetime) -> OidcAccessToken | None:
    """The access token's row if it exists and has not expired."""
    row = await session.get(OidcAccessToken, digest(token))
    return row if row is not None and row.expires_at > now else None
