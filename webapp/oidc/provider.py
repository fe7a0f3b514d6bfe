"""What the hand-off's endpoints share, made once by the app's lifespan, and how a request finds it."""

from __future__ import annotations

from dataclasses import dataclass, field

from limits import RateLimitItem
from starlette.requests import HTTPConnection

from webapp.attempts import AttemptLog
from webapp.limits import parse
from webapp.oidc.keys import KeyRing
from webapp.oidc.subjects import Subjects
from webapp.settings import Settings
from webapp.state import Shared, app_state


@dataclass
class Provider(Shared):
    """The OpenID provider's state: what the lifespan shares; keys, `sub` secret, its limits, the log."""

    keys: KeyRing = field(init=False)
    subjects: Subjects = field(init=False)
    log: AttemptLog = field(init=False)
    token_failures_per_ip: list[RateLimitItem] = field(init=False)
    token_failures_per_client: list[RateLimitItem] = field(init=False)
    authorize_per_ip: list[RateLimitItem] = field(init=False)

    def __post_init__(self) -> None:
        self.keys = KeyRing(self.sessions, self.clock, self.settings.oidc_signing_key_file)
        self.subjects = Subjects(self.sessions, self.clock)
        self.log = AttemptLog(self.sessions, self.clock, writer=self.writer)
        self.token_failures_per_ip = parse(self.settings.limit_token_failures_per_ip)
        self.token_failures_per_client = parse(self.settings.limit_token_failures_per_client)
        self.authorize_per_ip = parse(self.settings.limit_authorize_per_ip)

    def issuer(self, base_url: str) -> str:
        """PUBLIC_URL; in sandbox mode without one, `base_url`, the address the request came to."""
        return self.settings.public_url or base_url.rstrip("/")


def enabled(settings: Settings) -> bool:
    """Whether the hand-off is served: with a PUBLIC_URL, or in sandbox mode."""
    return settings.public_url is not None or settings.sandbox


def served(connection: HTTPConnection) -> Provider:
    """The app's provider, for a route mounted (or a hand-off loaded) only while the hand-off is served."""
    provider = app_state(connection)["oidc"]
    assert provider is not None, "the hand-off's routes and requests exist only while the hand-off is served"
    return provider


def issuer_of(connection: HTTPConnection) -> str:
    """The issuer as a request to this address sees it (`Provider.issuer`)."""
    return served(connection).issuer(str(connection.base_url))
