"""The RSA keys that sign ID tokens (RS256), and the JWKS that publishes them.

Keys live in the database, so every worker and every restart sign with the
same key: one is made the first time a key is needed (the first JWKS or token
request) if none is active. `voice2fa keys
rotate` adds a newer key, which signs from then on; the older one stays in the
JWKS, so tokens it signed still verify, until `voice2fa keys retire <kid>`.
With OIDC_SIGNING_KEY_FILE the key comes from that PEM file instead (it is not
copied into the database); database keys not retired are still published.

The kid is the key's RFC 7638 thumbprint (SHA-256) in hex rather than base64url,
which may begin with "-" and so read as an option to `keys retire`. Private
keys never leave the server: the JWKS holds the public halves only.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio.to_thread
from joserfc.jwk import KeyParameters, RSAKey
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from webapp.models import OidcSigningKey

ALGORITHM = "RS256"
KEY_BITS = 2048
_PARAMETERS: KeyParameters = {"use": "sig", "alg": ALGORITHM}


def kid_of(key: RSAKey) -> str:
    """The key's RFC 7638 thumbprint, in hex."""
    return base64.urlsafe_b64decode(key.thumbprint() + "==").hex()


def load_pem(pem: str | bytes) -> RSAKey:
    """An RSA private key from PEM, its kid set to its thumbprint; ValueError if it is not one."""
    try:
        key = RSAKey.import_key(pem)
    except Exception as exc:  # noqa: BLE001 - joserfc raises whatever the PEM parser raised
        raise ValueError(f"not an RSA private key in PEM: {exc}") from None
    if not key.is_private:
        raise ValueError("the PEM holds a public key; ID tokens need the private key")
    return RSAKey.import_key(pem, parameters={**_PARAMETERS, "kid": kid_of(key)})


def _generate() -> tuple[str, str]:
    key = RSAKey.generate_key(KEY_BITS, parameters=_PARAMETERS)
    return kid_of(key), key.as_pem(private=True).decode("ascii")


async def create(session: AsyncSession, now: datetime) -> str:
    """Make a new signing key (it signs from now on); its kid."""
    kid, pem = await anyio.to_thread.run_sync(_generate)  # RSA generation takes CPU for a while
    session.add(OidcSigningKey(kid=kid, private_pem=pem, created_at=now))
    await session.commit()
    return kid


async def active(session: AsyncSession) -> list[OidcSigningKey]:
    """The keys not retired, newest (the one that signs) first."""
    query = select(OidcSigningKey).where(OidcSigningKey.retired_at.is_(None))
    return list((await session.scalars(query.order_by(OidcSigningKey.created_at.desc(), OidcSigningKey.kid))).all())


async def every(session: AsyncSession) -> list[OidcSigningKey]:
    """All keys, retired ones too, newest first."""
    query = select(OidcSigningKey).order_by(OidcSigningKey.created_at.desc(), OidcSigningKey.kid)
    return list((await session.scalars(query)).all())


async def retire(session: AsyncSession, kid: str, now: datetime) -> None:
    """Take a key out of the JWKS; ValueError if it is unknown, retired already, or the one signing."""
    key = await session.get(OidcSigningKey, kid)
    if key is None:
        raise ValueError(f"no signing key {kid!r} (see `voice2fa keys list`)")
    if key.retired_at is not None:
        raise ValueError(f"the key {kid} was retired already")
    newest = await active(session)
    if newest and newest[0].kid == kid:
        raise ValueError(f"the key {kid} is the one signing: run `voice2fa keys rotate` first, then retire it")
    key.retired_at = now
    await session.commit()


@dataclass
class KeyRing:
    """The keys as the app uses them: the one that signs, and the published set."""

    sessions: async_sessionmaker[AsyncSession]
    clock: Callable[[], datetime]
    key_file: str | None = None

    def __post_init__(self) -> None:
        self._parsed: dict[str, RSAKey] = {}  # kid → key: PEM parsing is not free
        self._file_key: RSAKey | None = None
        self._creating = anyio.Lock()

    async def start(self) -> None:
        """At start-up: read OIDC_SIGNING_KEY_FILE, so that a bad file stops the app at once."""
        if self.key_file is not None:
            pem = await anyio.to_thread.run_sync(Path(self.key_file).read_bytes)
            self._file_key = load_pem(pem)

    async def signing_key(self) -> RSAKey:
        """The key that signs now: the file's, or the newest active one in the database."""
        if self._file_key is not None:
            return self._file_key
        return (await self._active())[0]

    async def jwks(self) -> dict[str, Any]:
        """The public keys, as a JWK Set."""
        keys = await self._active()
        if self._file_key is not None:
            keys = [self._file_key, *(key for key in keys if key.kid != self._file_key.kid)]
        return {"keys": [key.as_dict(private=False) for key in keys]}

    async def _active(self) -> list[RSAKey]:
        """The database's active keys, newest first; the first one made if there are none (and no file)."""
        rows = await self._rows()
        if not rows and self._file_key is None:
            async with self._creating:  # one new key per process, however many requests ask at once
                rows = await self._rows()
                if not rows:
                    async with self.sessions() as session:
                        await create(session, self.clock())
                    rows = await self._rows()
        found = []
        for row in rows:
            if row.kid not in self._parsed:
                self._parsed[row.kid] = load_pem(row.private_pem)
            found.append(self._parsed[row.kid])
        return found

    async def _rows(self) -> list[OidcSigningKey]:
        async with self.sessions() as session:
            return await active(session)
