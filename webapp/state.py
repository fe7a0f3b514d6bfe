"""What the lifespan shares with every request: `AppState`, typed (starlette's lifespan state).

`Shared` is what it hands each part that keeps state of its own (the JSON
API's `Api`, the OpenID provider's `Provider`): settings, database, clock,
limits and the attempts writer.

`create_app`'s lifespan yields one `AppState`; starlette copies it into each
request's `request.state`. Handlers read it through `app_state(request)`, so
that `app_state(request)["flow"]` is a `Flow` to the type checker, not `Any`.
What a request adds for itself (`operator`, `form`, `handoff`) is not part of
it and stays on `request.state`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, TypedDict, cast

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import HTTPConnection
from starlette.types import Scope

if TYPE_CHECKING:  # these modules import the routes that read the state
    from webapp.admin.auth import Operators
    from webapp.admin.pages import AdminPages
    from webapp.api.context import Api
    from webapp.attempt_writer import AttemptWriter
    from webapp.flow import Flow
    from webapp.guard import Guard
    from webapp.limits import RateLimits
    from webapp.oidc.provider import Provider
    from webapp.pages import Pages
    from webapp.provider.sandbox import SandboxState
    from webapp.settings import Settings


@dataclass
class Shared:
    """What the lifespan hands a part with state of its own: settings, database, clock, limits, attempts writer."""

    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    clock: Callable[[], datetime]
    limits: RateLimits
    #: the app's one writer of attempts rows (group commit, folding); None: each row commits itself
    writer: AttemptWriter | None = None


class AppState(TypedDict):
    flow: Flow
    pages: Pages
    sandbox: SandboxState | None  # sandbox mode only
    client_ip: Callable[[Scope], str]  # who the client is (TRUSTED_PROXIES applied)
    limits: RateLimits
    sessions: async_sessionmaker[AsyncSession]
    guard: Guard
    clock: Callable[[], datetime]
    operators: Operators | None  # None: the operators' pages are off
    admin_pages: AdminPages
    oidc: Provider | None  # None: the hand-off is off
    api: Api  # the JSON API (always mounted)


def app_state(connection: HTTPConnection) -> AppState:
    """The lifespan's state as this request sees it."""
    # starlette's own typed state (`Request[AppState]`) is this same cast of its
    # `State`, which answers `state["key"]` as well as `state.key`.
    return cast("AppState", connection.state)


def ip_of(connection: HTTPConnection) -> str:
    """The client's IP for this request, TRUSTED_PROXIES applied (the lifespan's `client_ip`)."""
    return app_state(connection)["client_ip"](connection.scope)
