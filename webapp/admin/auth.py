"""Who may see the operators' pages: HTTP Basic against one configured account.

The password is stored as a salted scrypt hash (`webapp.passwords`). scrypt
costs ~50 ms on purpose, and Basic sends the password with every request, so
a process remembers the credentials it has already verified (as an HMAC under
a key of its own, never the password).

Failed logins are counted per client IP and refused past LIMIT_ADMIN_FAILURES.
A guess is tested against the limit before its password is verified, and a
process verifies one password at a time per IP, testing the limit again once
its turn comes: so guesses sent all at once still get only the limit's number
of verifications (in one process; with W processes sharing Redis, at most
W - 1 more, those already verifying when the limit filled). Every failure is
also counted in the process itself, so while the shared storage is down the
limit still holds per process, rather than failing open for password guessing.

Every operators' POST also carries the form token of the operator's session
(`webapp.csrf`), checked here before any handler runs; a form that can't be
read or used is answered with `AdminPages.problem`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import secrets
import weakref
from collections.abc import Awaitable, Callable
from functools import wraps

import anyio
import anyio.to_thread
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from webapp import csrf
from webapp.cross_origin import SAFE_METHODS
from webapp.forms import BadForm, read_form
from webapp.limits import LimiterUnavailable, RateLimits, parse
from webapp.passwords import verify_password
from webapp.state import app_state

log = logging.getLogger(__name__)

REALM = 'Basic realm="voice2fa operators", charset="UTF-8"'
_REMEMBERED = 64

Handler = Callable[[Request], Awaitable[Response]]


class Operators:
    """Checks the `Authorization: Basic` header of a request."""

    def __init__(
        self, user: str, password_hash: str, limits: RateLimits, failures: str, *, in_process: RateLimits
    ) -> None:
        self.user = user
        self._hash = password_hash
        self._shared = limits
        #: Counts the same failures in this process alone, for when the shared storage is down.
        self._local = in_process
        self._failures = parse(failures)
        self._key = secrets.token_bytes(32)
        self._verified: set[bytes] = set()
        #: One password verification in flight per limit key; a lock lives while someone holds or awaits it.
        self._turns: weakref.WeakValueDictionary[tuple[str, ...], anyio.Lock] = weakref.WeakValueDictionary()

    async def authenticate(self, request: Request, ip: str) -> str | Response:
        """The operator's name, or the response that refuses the request."""
        key = ("admin-fail", self._shared.client_key(ip))  # an IPv6 client by its network
        wait = await self._blocked(request, key)
        if wait:
            return _too_many(wait)
        credentials = _basic(request.headers.get("authorization", ""))
        if credentials is None:
            return _challenge("Log in to see the operators' pages.")
        user, password = credentials
        token = hmac.new(self._key, f"{user}\0{password}".encode("utf-8", "surrogatepass"), hashlib.sha256).digest()
        if token in self._verified:
            return user
        async with self._turn(key):
            # Every guess that had its turn before this one has been counted by now.
            wait = await self._blocked(request, key)
            if wait:
                return _too_many(wait)
            if await self._verify(user, password):
                self._remember(token)
                return user
            log.warning("failed operator login from %s (user %r)", ip, user[:64])
            await self._count_failure(key)
        return _challenge("Wrong user name or password.")

    async def _blocked(self, request: Request, key: tuple[str, ...]) -> int | None:
        """Seconds to wait if either count of failures is full; notes on the request whether the shared one answered."""
        local = await self._local.blocked(self._failures, *key)
        try:
            shared = await self._shared.blocked(self._failures, *key)
        except LimiterUnavailable:
            request.state.counters_unavailable = True
            shared = None
        return max(local or 0, shared or 0) or None

    async def _count_failure(self, key: tuple[str, ...]) -> None:
        await self._local.hit(self._failures, *key)
        try:
            await self._shared.hit(self._failures, *key)
        except LimiterUnavailable:
            pass  # counted in this process; the shared count resumes when the storage is back

    def _turn(self, key: tuple[str, ...]) -> anyio.Lock:
        lock = self._turns.get(key)
        if lock is None:
            lock = self._turns[key] = anyio.Lock()
        return lock

    async def _verify(self, user: str, password: str) -> bool:
        user_ok = hmac.compare_digest(user.encode("utf-8", "surrogatepass"), self.user.encode("utf-8"))
        # Verify the password even for a wrong user name, so timing says nothing about which was wrong.
        password_ok = await anyio.to_thread.run_sync(verify_password, password, self._hash)
        return user_ok and password_ok

    def _remember(self, token: bytes) -> None:
        if len(self._verified) >= _REMEMBERED:
            self._verified.clear()
        self._verified.add(token)


def operator_only(handler: Handler) -> Handler:
    """Wrap an operators' page: Basic auth first, the form token on a POST, `Cache-Control: no-store` always."""

    @wraps(handler)
    async def wrapper(request: Request) -> Response:
        state = app_state(request)
        operators = state["operators"]
        assert operators is not None, "the operators' pages are only served with a password"
        ip = state["client_ip"](request.scope)
        who = await operators.authenticate(request, ip)
        if isinstance(who, Response):
            return who
        request.state.operator = who
        if request.method not in SAFE_METHODS:
            refused = await _read_operators_form(request, ip)
            if refused is not None:
                return _no_store(refused)
        return _no_store(await handler(request))

    return wrapper


async def _read_operators_form(request: Request, ip: str) -> Response | None:
    """Read the POST's form into `request.state.form`; a page saying what to do if it can't be used."""
    pages = app_state(request)["admin_pages"]
    try:
        form = await read_form(request)
    except BadForm as exc:
        return pages.problem(request, status_code=exc.status_code, title="Nothing was done", messages=[exc.message])
    if not csrf.valid(request.session, form.get(csrf.FIELD, "")):
        log.warning("refused an operators' POST to %s from %s: no valid form token", request.url.path, ip)
        return pages.problem(
            request,
            status_code=403,
            title="Nothing was done",
            messages=[
                (
                    "This form did not come from a page of your session (or the session has expired), "
                    "so nothing was changed."
                ),
                "Open the page again from the operators' pages, check what it says, and submit it from there.",
            ],
        )
    request.state.form = form
    return None


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


def _too_many(wait: int) -> Response:
    return _no_store(
        PlainTextResponse("Too many failed logins. Try again later.", 429, headers={"Retry-After": str(wait)})
    )


def _challenge(message: str) -> Response:
    return _no_store(PlainTextResponse(message, 401, headers={"WWW-Authenticate": REALM}))


def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    return response
