"""A verification as the forms show it: waiting for its code, or ended verified.

What the flow returns (`webapp.flow`) and what a refusal carries for the code
form or the result (`webapp.errors.Refusal`): plain values, no database row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Pending:
    """A verification waiting for its code, as the code form shows it."""

    id: str
    number: str
    international: str
    status: str
    attempts_left: int
    code_length: int
    expires_at: datetime
    #: seconds until "Call me again" is allowed, when the flow last looked
    resend_in: int
    #: which call of the verification the code form is for (1, 2, … with "Call me again")
    call: int = 1
    #: the person asked again for a number already being called: no new call
    reused: bool = False
    #: False: the call was placed but the database was away; the outbox will write it down
    recorded: bool = True
    #: when it ended verified (the database's time), if it did
    verified_at: datetime | None = None
    #: the JSON API client that created it, if one did (only that client may see it there)
    api_client: str | None = None
    #: the client IP it was started for
    ip: str = ""

    @property
    def closed(self) -> bool:
        """The code can no longer be checked; only a new call helps."""
        return self.status != "pending"


@dataclass(frozen=True, slots=True)
class Verified:
    """A verification that ended verified, as the result shows it."""

    id: str
    number: str
    international: str
    verified_at: datetime
