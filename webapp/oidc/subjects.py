"""Pairwise subject identifiers: one `sub` per number and client, unrelated across clients.

    sub = base64url(HMAC-SHA256(secret, client_id + "\\0" + number in E.164))

`secret` is 256 random bits (URL-safe text) made once and kept in the database (table
`oidc_secrets`, name "pairwise_sub"), so every worker and every restart give a
number the same `sub` at a client, while two clients can't join their users on
it, nor can anyone without the secret recompute a number from a `sub`
(OpenID Connect Core §8.1: the sector is the client).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from webapp.models import OidcSecret

SECRET_NAME = "pairwise_sub"  # noqa: S105 - the row's name; the secret is its value


def pairwise_sub(secret: bytes, client_id: str, number: str) -> str:
    """The `sub` of `number` (E.164) at `client_id`."""
    digest = hmac.new(secret, f"{client_id}\0{number}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass
class Subjects:
    """Pairwise `sub` values from the shared secret (read once per process, made on first use)."""

    sessions: async_sessionmaker[AsyncSession]
    clock: Callable[[], datetime]

    def __post_init__(self) -> None:
        self._secret: bytes | None = None

    async def sub(self, client_id: str, number: str) -> str:
        """The `sub` of `number` at `client_id`."""
        return pairwise_sub(await self._shared_secret(), client_id, number)

    async def _shared_secret(self) -> bytes:
        if self._secret is None:
            async with self.sessions() as session:
                row = await session.get(OidcSecret, SECRET_NAME)
                if row is None:
                    row = OidcSecret(name=SECRET_NAME, value=secrets.token_urlsafe(32), created_at=self.clock())
                    session.add(row)
                    try:
                        await session.commit()
                    except IntegrityError:  # another worker made it first: theirs counts
                        await session.rollback()
                        row = await session.get(OidcSecret, SECRET_NAME)
                        assert row is not None
            self._secret = row.value.encode("ascii")
        return self._secret
