"""Who is calling the JSON API: a registered client (`voice2fa client add`), by HTTP Basic on every request.

The secret is checked by the hand-off's own `clients.secret_matches` (scrypt,
in a thread). scrypt costs ~50 ms on purpose and Basic resends the secret
with every request, so a process remembers the credentials it has verified,
as an HMAC under a key of its own together with the stored hash: a removed
client (no row) or a new secret (another hash) is never taken from memory.

Failures count per socket peer (an IPv6 peer by its network), in the one
limiter: past LIMIT_API_AUTH_FAILURES_PER_IP a peer gets 429 before any
secret is checked. The peer, not `client_ip`: the body is not read before
the caller is known. As for the operators' login (`webapp.operators`), a
process verifies one secret at a time per peer and tests the limit again when
its turn comes, so guesses sent all at once still get only the limit's number
of scrypt verifications (per process).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import weakref
from typing import NoReturn

import anyio
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from webapp.api.problems import ApiRefusal
from webapp.attempts import AttemptLog
from webapp.limits import LimiterUnavailable, RateLimits, parse
from webapp.models import OidcClient
from webapp.oidc import clients
from webapp.outcomes import Outcome
from webapp.settings import Settings
from webapp.waits import wait_text

CHALLENGE = {"WWW-Authenticate": 'Basic realm="voice2fa api", charset="UTF-8"'}
FAILURES = "api-auth-failures"
_REMEMBERED = 256


def basic_credentials(header: str) -> tuple[str, str] | None:
    """(client_id, secret) from `Authorization: Basic …`, or None if there are none to read."""
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value.strip():
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    client_id, sep, secret = decoded.partition(":")
    return (client_id, secret) if sep and client_id and secret else None


class ClientAuth:
    """Checks a request's Basic credentials against the registered clients."""

    def __init__(
        self, settings: Settings, sessions: async_sessionmaker[AsyncSession], limits: RateLimits, log: AttemptLog
    ) -> None:
        self._sessions = sessions
        self._limits = limits
        self._log = log
        self._fail_open = settings.ratelimit_fail_open
        self._failures = parse(settings.limit_api_auth_failures_per_ip)
        self._key = secrets.token_bytes(32)
        self._verified: set[bytes] = set()
        #: One secret verification in flight per address; a lock lives while someone holds or awaits it.
        self._turns: weakref.WeakValueDictionary[tuple[str, ...], anyio.Lock] = weakref.WeakValueDictionary()

    async def client(self, authorization: str, peer: str) -> OidcClient:
        """The authenticated client, or an ApiRefusal (401 with a challenge, or 429)."""
        key = (FAILURES, self._limits.client_key(peer))
        await self._not_blocked(key, peer)
        credentials = basic_credentials(authorization)
        if credentials is None:
            await self._failed(key, peer, None, "Authenticate with HTTP Basic: your client_id and client_secret.")
        client_id, secret = credentials
        async with self._sessions() as session:
            client = await clients.get(session, client_id)
        if client is None:
            await self._failed(key, peer, None, "Unknown client or wrong secret.")
        token = hmac.new(
            self._key, f"{client.id}\0{client.secret_hash}\0{secret}".encode("utf-8", "surrogatepass"), hashlib.sha256
        ).digest()
        if token in self._verified:
            return client
        async with self._turn(key):
            # Every guess from this address that had its turn before this one has been counted by now.
            await self._not_blocked(key, peer)
            if not await clients.secret_matches(client, secret):
                await self._failed(key, peer, client.id, "Unknown client or wrong secret.")
        if len(self._verified) >= _REMEMBERED:
            self._verified.clear()
        self._verified.add(token)
        return client

    def _turn(self, key: tuple[str, ...]) -> anyio.Lock:
        lock = self._turns.get(key)
        if lock is None:
            lock = self._turns[key] = anyio.Lock()
        return lock

    async def _not_blocked(self, key: tuple[str, ...], peer: str) -> None:
        try:
            wait = await self._limits.blocked(self._failures, *key)
        except LimiterUnavailable:
            if self._fail_open:
                return
            await self._log.write("auth", Outcome.LIMITER_UNAVAILABLE, peer)
            raise ApiRefusal(
                Outcome.LIMITER_UNAVAILABLE, "We can't check credentials right now. Please try again."
            ) from None
        if wait:
            await self._log.write("auth", Outcome.BLOCKED_IP, peer)
            raise ApiRefusal(
                Outcome.BLOCKED_IP,
                f"Too many failed logins from this address. Try again in {wait_text(wait)}.",
                retry_after=wait,
            )

    async def _failed(self, key: tuple[str, ...], peer: str, client_id: str | None, message: str) -> NoReturn:
        await self._log.write("auth", Outcome.UNAUTHORIZED, peer, client_id=client_id)
        try:
            await self._limits.hit(self._failures, *key)
        except LimiterUnavailable:
            pass  # refused anyway; the next request meets the limiter's state again
        raise ApiRefusal(Outcome.UNAUTHORIZED, message, headers=dict(CHALLENGE))
