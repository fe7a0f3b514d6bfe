"""What the JSON API's handlers share, made once by the app's lifespan."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from webapp.api.auth import ClientAuth
from webapp.api.idempotency import IdempotencyKeys
from webapp.attempt_writer import AttemptWriter
from webapp.attempts import AttemptLog
from webapp.limits import RateLimits
from webapp.settings import Settings


@dataclass
class Api:
    """The API's state: settings, database, clock, limits; client authentication, idempotency keys, the log."""

    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    clock: Callable[[], datetime]
    limits: RateLimits
    #: the app's one writer of attempts rows (group commit, folding)
    writer: AttemptWriter | None = None
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
