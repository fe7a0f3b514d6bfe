"""Who may see the operators' pages: HTTP Basic against one configured account.

The password is stored as a salted scrypt hash (`webapp.passwords`). scrypt
costs ~50 ms on purpose, and Basic sends the password with every request, so
a process remembers the credentials it has already verified (as an HMAC under
a key of its own, never the password). Failed logins are counted per client
IP and refused past LIMIT_ADMIN_FAILURES.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import secrets
from collections.abc import Awaitable, Callable
from functools import wraps

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from webapp.limits import LimiterUnavailable, RateLimits, parse
from webapp.passwords import verify_password

log = logging.getLogger(__name__)

REALM = 'Basic realm="voice2fa operators", charset="UTF-8"'
_REMEMBERED = 64

Handler = Callable[[Request], Awaitable[Response]]


class Operators:
    """Checks the `Authorization: Basic` header of a request."""

    def __init__(self, user: str, password_hash: str, limits: RateLimits, failures: str) -> None:
        self.user = user
        self._hash = password_hash
        self._limits = limits
        self._failures = parse(failures)
        self._key = secrets.token_bytes(32)
        self._verified: set[bytes] = set()

    async def authenticate(self, request: Request, ip: str) -> str | Response:
        """The operator's name, or the response that refuses the request."""
        key = self._limits.client_key(ip)
        try:
            wait = await self._limits.blocked(self._failures, "admin-fail", key)
        except LimiterUnavailable:
            return _no_store(PlainTextResponse("The operators' pages are unavailable: the limiter does not answer.", 503))
        if wait:
            return _no_store(
                PlainTextResponse("Too many failed logins. Try again later.", 429, headers={"Retry-After": str(wait)})
            )
        credentials = _basic(request.headers.get("authorization", ""))
        if credentials is None:
            return _challenge("Log in to see the operators' pages.")
        user, password = credentials
        if await self._valid(user, password):
            return user
        log.warning("failed operator login from %s (user %r)", ip, user[:64])
        try:
            await self._limits.hit(self._failures, "admin-fail", key)
        except LimiterUnavailable:
            pass  # refused anyway; the next request meets the limiter's state again
        return _challenge("Wrong user name or password.")

    async def _valid(self, user: str, password: str) -> bool:
        token = hmac.new(self._key, f"{user}\0{password}".encode("utf-8", "surrogatepass"), hashlib.sha256).digest()
        if token in self._verified:
            return True
        user_ok = hmac.compare_digest(user.encode("utf-8", "surrogatepass"), self.user.encode("utf-8"))
        # Verify the password even for a wrong user name, so timing says nothing about which was wrong.
        password_ok = await anyio.to_thread.run_sync(verify_password, password, self._hash)
        if not (user_ok and password_ok):
            return False
        if len(self._verified) >= _REMEMBERED:
            self._verified.clear()
        self._verified.add(token)
        return True


def operator_only(handler: Handler) -> Handler:
    """Wrap an operators' page: Basic auth first, `Cache-Control: no-store` always."""

    @wraps(handler)
    async def wrapper(request: Request) -> Response:
        operators: Operators = request.state.operators
        who = await operators.authenticate(request, request.state.client_ip(request.scope))
        if isinstance(who, Response):
            return who
        request.state.operator = who
        return _no_store(await handler(request))

    return wrapper


def _basic(header: str) -> tuple[str, str] | None:
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


def _challenge(message: str) -> Response:
    return _no_store(PlainTextResponse(message, 401, headers={"WWW-Authenticate": REALM}))


def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    return response
