"""What the JSON API's handlers share, made once by the app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass, field

from webapp.api.auth import ClientAuth
from webapp.api.idempotency import IdempotencyKeys
from webapp.attempts import AttemptLog
from webapp.state import Shared


@dataclass
class Api(Shared):
    """The API's state: what the lifespan shares; client authentication, idempotency keys, the log."""

    auth: ClientAuth = field(init=False)
    keys: IdempotencyKeys = field(init=False)
    log: AttemptLog = field(init=False)

    def __post_init__(self) -> None:
        self.log = AttemptLog(self.sessions, self.clock, via="api", writer=self.writer)
        self.auth = ClientAuth(self.settings, self.sessions, self.limits, self.log)
        self.keys = IdempotencyKeys(self.sessions, self.clock)

    def log_for(self, client_id: str) -> AttemptLog:
        """The attempts log, its rows naming `client_id` and via "api"."""
        return self.log.for_client(client_id, via="api")
