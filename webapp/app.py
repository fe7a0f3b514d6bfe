"""The application factory: `create_app(settings)`.

The lifespan owns what is shared: the async engine and sessionmaker, the one
`httpx.AsyncClient`, and the flow built on them. Handlers reach them as
request state, typed (`webapp.state.AppState`). In sandbox mode (no provider
in PROVIDERS has credentials) the client talks to the in-process sandbox
through `httpx.ASGITransport`, so the real MessageBird and Twilio client code
runs, offline.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from functools import partial
from typing import Any

import anyio
import httpx
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from webapp import admin
from webapp.admin import AdminPages
from webapp.admin.auth import Operators
from webapp.api import routing as api_routing, sandbox as api_sandbox
from webapp.api.context import Api
from webapp.attempt_writer import AttemptWriter
from webapp.client_ip import client_ip, parse_networks
from webapp.cross_origin import CrossOriginProtection
from webapp.db import STORAGE_ERRORS, create_engine, create_sessionmaker
from webapp.db_pool import pool_options
from webapp.flow import Flow
from webapp.guard import Guard
from webapp.headers import SecurityHeaders
from webapp.limits import RateLimits
from webapp.logs import quiet_loggers
from webapp.oidc import endpoints as oidc_endpoints
from webapp.oidc.provider import Provider, enabled as handoff_enabled
from webapp.outbox import Outbox
from webapp.pages import Pages
from webapp.passwords import GENERATED, sandbox_password
from webapp.phone import CountryOptions
from webapp.provider.failover import Providers
from webapp.provider.sandbox import SandboxState, create_sandbox_app
from webapp.resources import STATIC
from webapp.routes import routes, storage_unavailable
from webapp.settings import Settings
from webapp.state import AppState

log = logging.getLogger("webapp")

SANDBOX_URL = "http://sandbox.invalid"


def utcnow() -> datetime:
    return datetime.now(UTC)


def _operators_password(settings: Settings) -> str | None:
    """The operators' password hash; in sandbox mode a random password if none is set."""
    if settings.admin_password_hash is not None:
        return str(settings.admin_password_hash)
    if not settings.sandbox:
        log.warning("The operators' pages are off: set ADMIN_PASSWORD_HASH (voice2fa hash-password) to turn them on.")
        return None
    password, hashed = sandbox_password()
    log.warning("Operators' pages: /admin/ as %r with password %s (%s).", settings.admin_user, password, GENERATED)
    return hashed


def create_app(
    settings: Settings,
    *,
    clock: Callable[[], datetime] = utcnow,
    provider_transport: httpx.AsyncBaseTransport | None = None,
) -> Starlette:
    """Build the app for `settings`; `clock` lets tests move time.

    `provider_transport` replaces how the provider is reached (by default the
    network, or the in-process sandbox in sandbox mode): tests put an
    `httpx.MockTransport` in front of the sandbox to make it misbehave.
    """
    settings.validate()
    quiet_loggers()  # httpx would log each check's code, in its URL
    # The sandbox's Twilio Verify Service speaks codes as long as the flow expects them.
    sandbox = SandboxState(clock=clock, twilio_code_length=settings.call.token_length) if settings.sandbox else None
    countries = CountryOptions(settings.locale)  # rendered once, here
    if settings.default_region not in countries:
        raise ValueError(f"DEFAULT_REGION {settings.default_region!r} is not a region phonenumbers knows")
    pages = Pages(
        countries,
        settings.default_region,
        sandbox_calls=sandbox.calls if sandbox else None,
        auto_reload=settings.reload_templates,
    )
    trusted = parse_networks(settings.trusted_proxies)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[AppState]:
        engine = create_engine(settings.database_url, serving=True, **pool_options(settings))
        timeout = httpx.Timeout(settings.provider_read_timeout, connect=settings.provider_connect_timeout)
        if sandbox is not None:
            log.warning(
                "Sandbox mode: no provider in PROVIDERS (%s) has credentials, so no real calls are made.",
                ",".join(settings.providers),
            )
            transport = provider_transport or httpx.ASGITransport(app=create_sandbox_app(sandbox))
            http = httpx.AsyncClient(transport=transport, timeout=timeout)
            providers = Providers.from_settings(http, settings, clock, sandbox_url=SANDBOX_URL)
        else:
            http = httpx.AsyncClient(
                transport=provider_transport, timeout=timeout, limits=httpx.Limits(max_connections=50)
            )
            providers = Providers.from_settings(http, settings, clock, sandbox_url=None)
        sessions = create_sessionmaker(engine)
        limits = RateLimits(
            settings.ratelimit_storage_url,
            key_prefix=settings.ratelimit_key_prefix,
            ipv6_prefix=settings.limit_ipv6_prefix,
            now=lambda: clock().timestamp(),
        )
        guard = Guard(settings, limits, sessions, clock)
        outbox = Outbox()
        writer = AttemptWriter(
            sessions, fold_seconds=settings.attempts_fold_seconds, ipv6_prefix=settings.limit_ipv6_prefix
        )
        flow = Flow(sessions, providers, guard, settings, clock, outbox=outbox, writer=writer)
        # Failed logins also counted in this process: the limit holds with Redis down.
        operators_local = RateLimits(
            "memory://",
            key_prefix="operators",
            ipv6_prefix=settings.limit_ipv6_prefix,
            now=lambda: clock().timestamp(),
        )
        oidc = Provider(settings, sessions, clock, limits, writer=writer) if handoff else None
        try:
            if oidc is not None:
                await oidc.keys.start()  # reads OIDC_SIGNING_KEY_FILE, if set
            async with anyio.create_task_group() as background:
                background.start_soon(outbox.run)  # writes down calls placed while the database was away
                await background.start(writer.run)  # the attempts rows that stand alone, in batches
                try:
                    yield {
                        "flow": flow,
                        "pages": pages,
                        "sandbox": sandbox,
                        "client_ip": partial(client_ip, trusted=trusted),
                        "limits": limits,
                        "sessions": sessions,
                        "guard": guard,
                        "clock": clock,
                        "operators": Operators(
                            settings.admin_user,
                            admin_hash,
                            limits,
                            settings.limit_admin_failures,
                            in_process=operators_local,
                        )
                        if admin_hash
                        else None,
                        "admin_pages": AdminPages(pages, fail_open=settings.ratelimit_fail_open),
                        "oidc": oidc,
                        "api": Api(settings, sessions, clock, limits, writer),
                    }
                finally:
                    await writer.stop()  # commits what is queued (bounded); later rows commit themselves
                    background.cancel_scope.cancel()
        finally:
            await outbox.close()
            await limits.aclose()
            await http.aclose()
            await engine.dispose()

    admin_hash = _operators_password(settings)
    handoff = handoff_enabled(settings)
    app_routes = routes(sandbox=sandbox is not None, handoff=handoff) + api_routing.routes()
    if sandbox is not None:
        app_routes += api_sandbox.routes()  # an API client's calls, code included
    if admin_hash:
        app_routes += admin.routes()
    if handoff:
        app_routes += oidc_endpoints.routes()
    else:
        log.warning("The OpenID Connect hand-off is off: set PUBLIC_URL to the address sites reach voice2fa at.")
    app_routes.append(Mount("/static", StaticFiles(directory=STATIC), name="static"))
    middleware = [
        Middleware(SecurityHeaders),
        Middleware(CrossOriginProtection, trusted=trusted),
        Middleware(
            SessionMiddleware,
            secret_key=str(settings.secret_key),
            session_cookie="voice2fa_session",
            max_age=settings.session_max_age,
            same_site="lax",
            https_only=settings.secure_cookies,
        ),
    ]
    # A database (or SQLite file) that is away is a 503 with a message wherever it shows.
    handlers: dict[Any, Callable[..., Any]] = dict.fromkeys(STORAGE_ERRORS, storage_unavailable)
    handlers[HTTPException] = api_routing.http_exception  # problem details under /api/
    app = Starlette(routes=app_routes, middleware=middleware, lifespan=lifespan, exception_handlers=handlers)
    app.state.settings = settings
    app.state.sandbox = sandbox
    return app
