"""The registered clients: the sites that hand their sign-up flow over to voice2fa.

A client has an id, a name for the page ("Verify your phone number for …"),
a secret stored only as a salted scrypt hash (`webapp.passwords`), and its
redirect URIs, matched later by exact string comparison.
"""

from __future__ import annotations

import secrets
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

import anyio.to_thread
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from webapp.db import affected
from webapp.models import OidcClient, max_length
from webapp.passwords import hash_password, verify_password
from webapp.settings_checks import LOOPBACK_HOSTS

MAX_NAME = max_length(OidcClient.__table__.c.name)
MAX_REDIRECT_URI = 2000


@dataclass(frozen=True)
class Credentials:
    """What `client add` prints once: the secret is never shown again."""

    client_id: str
    client_secret: str


def check_redirect_uri(uri: str) -> str:
    """`uri` if it may be registered, else ValueError saying why.

    https://, or http:// on localhost or 127.0.0.1 (RFC 8252 loopback, for
    development); absolute, without a fragment (RFC 6749 §3.1.2) or user info.
    """
    if not uri or len(uri) > MAX_REDIRECT_URI:
        raise ValueError(f"a redirect URI has 1 to {MAX_REDIRECT_URI} characters: {uri[:80]!r}")
    if not uri.isascii() or any(ch.isspace() or unicodedata.category(ch) == "Cc" for ch in uri):
        raise ValueError(f"a redirect URI is ASCII without spaces (percent-encode the rest): {uri!r}")
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError:
        raise ValueError(f"not a URL: {uri!r}") from None
    if "#" in uri:
        raise ValueError(f"a redirect URI has no fragment (#…): {uri!r}")
    if not parts.hostname or "@" in parts.netloc:
        raise ValueError(f"a redirect URI names a host, without user or password: {uri!r}")
    if uri.startswith("https://"):
        return uri
    if uri.startswith("http://") and parts.hostname in LOOPBACK_HOSTS:
        return uri
    raise ValueError(f"a redirect URI must be https:// (http:// only for localhost or 127.0.0.1): {uri!r}")


def check_name(name: str) -> str:
    """The client's name, trimmed, if it can be shown on the page."""
    name = " ".join(name.split())
    if not 1 <= len(name) <= MAX_NAME or any(unicodedata.category(ch)[0] == "C" for ch in name):
        raise ValueError(f"--name is 1 to {MAX_NAME} printable characters")
    return name


async def add(session: AsyncSession, name: str, redirect_uris: list[str], now: datetime) -> Credentials:
    """Register a client; its credentials, the secret for the only time."""
    name = check_name(name)
    uris = [check_redirect_uri(uri) for uri in redirect_uris]
    if not uris:
        raise ValueError("a client needs at least one --redirect-uri")
    # Hex ids: a base64url id may begin with "-", which a command line takes for an option.
    credentials = Credentials(client_id=secrets.token_hex(16), client_secret=secrets.token_urlsafe(32))
    secret_hash = await anyio.to_thread.run_sync(hash_password, credentials.client_secret)
    session.add(
        OidcClient(
            id=credentials.client_id,
            name=name,
            secret_hash=secret_hash,
            redirect_uris=list(dict.fromkeys(uris)),
            created_at=now,
        )
    )
    await session.commit()
    return credentials


async def all_clients(session: AsyncSession) -> list[OidcClient]:
    """Every client, oldest first."""
    return list((await session.scalars(select(OidcClient).order_by(OidcClient.created_at, OidcClient.id))).all())


async def names(session: AsyncSession) -> dict[str, str]:
    """Every client's name by its id, for the operators' tables."""
    return dict((await session.execute(select(OidcClient.id, OidcClient.name))).all())


async def get(session: AsyncSession, client_id: str) -> OidcClient | None:
    """The client with this id, or None (also for ids no client could have)."""
    if not client_id or len(client_id) > max_length(OidcClient.__table__.c.id):
        return None
    return await session.get(OidcClient, client_id)


async def remove(session: AsyncSession, client_id: str) -> bool:
    """Remove a client, and with it its pending requests, codes and tokens; whether it existed."""
    result = await session.execute(delete(OidcClient).where(OidcClient.id == client_id))
    await session.commit()
    return bool(affected(result))


async def secret_matches(client: OidcClient, secret: str) -> bool:
    """Whether `secret` is the client's (scrypt, constant time), off the event loop."""
    return await anyio.to_thread.run_sync(verify_password, secret, client.secret_hash)
