"""What the sandbox remembers: the verifications of both APIs and the calls placed; its outage switches."""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

import anyio
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

#: Recipients (digits without "+") that make failures visible, through either API;
#: each is a valid Dutch mobile number, so phone policy lets them through.
TRIGGER_SERVER_ERROR = "31610000500"
TRIGGER_HANG = "31610000504"
TRIGGER_CALL_FAILS = "31610000486"
#: Recipients one API refuses and the other calls, to watch failover (PROVIDERS=messagebird,twilio):
#: a 503 in that API's own error body, no call placed.
TRIGGER_MESSAGEBIRD_DOWN = "31610000501"
TRIGGER_TWILIO_DOWN = "31610000502"

MAX_KEPT = 1000

#: What `SandboxState.outages` can make an API do: answer every request with one of
#: these statuses in its own error body, placing no call; or
HANG = "hang"  # wait `hang_seconds`, then the same 500 as TRIGGER_HANG
CUT = "cut"  # place the call, then break the answer to the create off half-way
OUTAGE_STATUSES = (401, 403, 429, 500, 502, 503)

Endpoint = Callable[[Request], Awaitable[Response]]


@dataclass(slots=True, kw_only=True)
class SandboxVerification:
    """A verification one of the APIs made; `status` is in that API's own words."""

    api: ClassVar[str]
    #: the statuses that still wait for a code, and what `calls()` shows for each status
    waiting: ClassVar[frozenset[str]]
    call_statuses: ClassVar[dict[str, str]] = {}

    id: str
    recipient: str  # digits without "+"
    type: str  # MessageBird's word for the channel: a voice call is "tts" in both APIs
    token: str
    body: str
    created: datetime
    valid_until: datetime
    max_attempts: int
    status: str
    attempts: int = 0
    #: each call placed for it, as (order, when): Twilio calls again with the same code
    calls: list[tuple[int, datetime]] = field(default_factory=list)

    def refresh(self, now: datetime) -> SandboxVerification:
        """Expire it if its time has come while it waited for a code."""
        if self.status in self.waiting and now >= self.valid_until:
            self.status = "expired"
        return self

    @property
    def call_status(self) -> str:
        """The status in the words of `GET /_sandbox/calls` (MessageBird's)."""
        return self.call_statuses.get(self.status, self.status)


class SandboxState:
    """The verifications the sandbox has made, by id, oldest first."""

    def __init__(
        self,
        clock: Callable[[], datetime] | None = None,
        hang_seconds: float = 30.0,
        *,
        twilio_code_length: int = 6,
    ) -> None:
        self.clock = clock or (lambda: datetime.now(UTC))
        self.hang_seconds = hang_seconds
        #: the CodeLength of every Twilio Verify Service the sandbox plays (Twilio's default)
        self.twilio_code_length = twilio_code_length
        self.verifications: dict[str, SandboxVerification] = {}
        #: one API misbehaving for every number ("messagebird" → 503, HANG or CUT), while the
        #: other works: how a test (or a developer) sees failover between the two
        self.outages: dict[str, int | str] = {}
        self._order = itertools.count()

    async def outage(self, api: str) -> int | None:
        """The status `api` answers every request with now (after HANG's wait), or None."""
        how = self.outages.get(api)
        if how == HANG:
            await anyio.sleep(self.hang_seconds)
            return 500
        return how if isinstance(how, int) else None

    def cut(self, api: str) -> bool:
        """`api`'s answers to a create break off half-way (the call is placed all the same)."""
        return self.outages.get(api) == CUT

    def now(self) -> datetime:
        return self.clock().astimezone(UTC)

    def add(self, verification: SandboxVerification) -> None:
        """Keep a new verification and count its first call."""
        self.verifications[verification.id] = verification
        verification.calls.append((next(self._order), verification.created))
        while len(self.verifications) > MAX_KEPT:
            del self.verifications[next(iter(self.verifications))]

    def call(self, verification: SandboxVerification) -> None:
        """Count one more call placed for `verification`."""
        verification.calls.append((next(self._order), self.now()))

    def get(self, verification_id: str) -> SandboxVerification | None:
        """The verification with that id, expired if its time has come; None once deleted."""
        verification = self.verifications.get(verification_id)
        if verification is None or verification.status == "deleted":
            return None
        return verification.refresh(self.now())

    def calls(self) -> list[dict[str, Any]]:
        """The calls placed through either API, newest first."""
        now = self.now()
        placed = [(order, when, v.refresh(now)) for v in self.verifications.values() for order, when in v.calls]
        placed.sort(key=lambda call: call[0], reverse=True)
        return [
            {
                "id": v.id,
                "api": v.api,
                "recipient": v.recipient,
                "type": v.type,
                "token": v.token,
                "body": v.body,
                "createdDatetime": when.isoformat(timespec="seconds"),
                "status": v.call_status,
            }
            for _, when, v in placed
        ]


def unless_out(state: SandboxState, api: str, answer: Callable[[int], Response], endpoint: Endpoint) -> Endpoint:
    """`endpoint`, unless `state.outages` has `api` answer every request: then `answer(status)`, its own error body."""

    async def guarded(request: Request) -> Response:
        status = await state.outage(api)
        if status is None:
            return await endpoint(request)
        return answer(status)

    return guarded


def cut_off(response: Response) -> Response:
    """`response` broken off half-way: a connection lost mid-answer (the server closes it)."""
    return _CutOff(bytes(response.body), status_code=response.status_code, media_type=response.media_type)


class _CutOff(Response):
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The whole length announced, half the body sent, and never the rest: the server
        # closes the connection when the app returns without finishing its answer.
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        await send({"type": "http.response.body", "body": self.body[: len(self.body) // 2], "more_body": True})
