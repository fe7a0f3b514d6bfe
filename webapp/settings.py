"""Settings, read once from the environment (or a `.env` file) with typed casts.

Every setting has a safe default: with nothing set, voice2fa runs in sandbox
mode on a SQLite file in the working directory and places no real calls.
Tests build their own `Settings(...)`; nothing patches a global.

Each setting is declared once, as a field below: its name (the environment's
is the same, upper-cased), type, default, doc and bounds (`webapp.env`). The
README's settings tables list every one of them (a test holds them together).
`validate` adds what no single field can say: settings that go together
(`webapp.settings_checks`).
"""

from __future__ import annotations

import dataclasses
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.config import Config
from starlette.datastructures import Secret

from webapp import env, settings_checks
from webapp.env import Declared, Range, setting
from webapp.provider import MESSAGEBIRD, TWILIO, CallOptions
from webapp.provider.twilio import DEFAULT_BASE_URL as TWILIO_BASE_URL

DEFAULT_BASE_URL = "https://rest.messagebird.com"

#: The call options (`CallOptions`: names, types, defaults), read as VERIFY_TEMPLATE, VERIFY_LANGUAGE…
CALL = {
    "template": Declared("What the voice says; must hold %token."),
    "language": Declared("The voice's language, e.g. en-gb."),
    "voice": Declared("male or female."),
    "token_length": Declared("Digits in the code.", Range(6, 10)),
    "timeout": Declared("Seconds a code lives.", Range(30, None, unit="seconds")),
    "max_attempts": Declared("Wrong codes allowed per call.", Range(1, 10)),
    "originator": Declared("The caller id, where the account allows one."),
}
SECONDS = Range(0, 3600, "must be more than 0 and at most 3600 seconds", above=True)
PER_WORKER = "(connections per worker process)"


def _random_key() -> Secret:
    return Secret(secrets.token_urlsafe(32))


def _issuer(url: str) -> str:
    return url.rstrip("/")  # endpoints are the issuer + a path


@dataclass(frozen=True)
class Settings:
    providers: tuple[str, ...] = setting(
        (MESSAGEBIRD,),
        clean=str.lower,
        doc="The Verify providers, in the order a start tries them (webapp.provider.failover); "
        "none of them with credentials: sandbox mode, calls go to the in-process sandbox.",
    )
    provider_breaker_failures: int = setting(
        5,
        bounds=Range(1, 1000),
        doc=("A provider that answered this many starts in a row 'unavailable' is skipped (per process)..."),
    )
    provider_breaker_seconds: int = setting(30, bounds=Range(1, 86400), doc="... for this many seconds.")
    messagebird_api_key: Secret | None = setting(None, doc="MessageBird's live access key.")
    messagebird_base_url: str = setting(DEFAULT_BASE_URL, doc="Where MessageBird's Verify API is.")
    twilio_account_sid: str | None = setting(None, doc="Twilio Verify (all three or none): the Account or API key SID.")
    twilio_auth_token: Secret | None = setting(None, doc="The Account SID's auth token, or the API key's secret.")
    twilio_verify_service_sid: str | None = setting(None, doc="The Verify Service to call through (VA…).")
    twilio_base_url: str = setting(TWILIO_BASE_URL, clean=str.strip, doc="Where Twilio Verify is.")
    database_url: str = setting("sqlite+aiosqlite:///voice2fa.db", doc="SQLite (the default) or PostgreSQL.")
    ratelimit_storage_url: str = setting("memory://", doc="memory:// in one process; redis://… for several.")
    secret_key: Secret = setting(
        default_factory=_random_key,
        doc=(
            "Signs the session cookie. Unset: a random key per process (sessions end on restart); "
            "`voice2fa serve` shares one across its workers."
        ),
    )
    cookie_secure: bool | None = setting(
        None, doc=("None (auto): secure cookies whenever a real key is set (production), not in sandbox mode.")
    )
    session_max_age: int = setting(3600, doc="Seconds a session cookie lives.")
    trusted_proxies: tuple[str, ...] = setting((), doc="CIDRs whose X-Forwarded-For is believed.")

    default_region: str = setting("NL", clean=str.upper, doc="The country preselected in the form.")
    locale: str = setting("en", doc="The language of the country names.")
    call: CallOptions = setting(CallOptions(), prefix="VERIFY_", parts=CALL, doc="The Verify call's options.")
    resend_cooldown: int = setting(30, doc="Seconds before 'Call me again' is allowed.")

    # -- the abuse guard (README: "Abuse protection" gives the reason for each) --
    ratelimit_fail_open: bool = setting(
        False, doc="Fail closed: with the limiter storage unreachable, no call is placed."
    )
    ratelimit_key_prefix: str = setting("voice2fa", doc="Keeps counters apart when apps share a Redis.")
    limit_start_per_ip: str = setting("5/minute;20/hour", limits=True, doc="Calls asked per client IP.")
    limit_start_per_number: str = setting(
        "1/30seconds;3/10minutes;5/hour;10/day", limits=True, doc="Calls to one number, across all IPs."
    )
    limit_check_per_ip: str = setting("10/minute", limits=True, doc="Code checks per client IP.")
    limit_calls_global: str = setting("60/minute;600/hour", limits=True, doc="Calls overall.")
    limit_calls_per_country: str = setting("100/hour", limits=True, doc="Calls per country.")
    limit_ipv6_prefix: int = setting(
        64,
        bounds=Range(1, 128, "must be between 1 and 128, e.g. 64"),
        doc="Per-IP counters count an IPv6 client by its network of this many bits.",
    )
    attempts_fold_seconds: int = setting(
        60,
        bounds=Range(0, 3600, "must be between 0 (no folding) and 3600 seconds, e.g. 60"),
        doc="Identical refusals within this many seconds are one attempts row with a count (0: a row each).",
    )
    allowed_countries: tuple[str, ...] = setting((), clean=str.upper, doc="Empty: every country phonenumbers knows.")
    denied_countries: tuple[str, ...] = setting((), clean=str.upper, doc="Countries never called.")
    blocked_number_types: tuple[str, ...] = setting(
        ("premium_rate", "shared_cost", "uan", "pager", "voicemail", "personal_number"),
        clean=str.lower,
        doc="phonenumbers' number types never called.",
    )
    allow_voip: bool = setting(True, doc="VoIP numbers may be called.")
    allow_international_networks: bool = setting(
        False,
        doc=(
            "Satellite and other non-geographic 'international network' numbers (phonenumbers region 001: "
            "+870, +881, +882, +883, ...): costly, seldom a person's."
        ),
    )
    # The circuit breaker (webapp/circuit.py): when fewer than circuit_min_verified
    # of a country's last circuit_window ended calls were verified, and the
    # unanswered ones came from circuit_min_networks networks to circuit_min_numbers
    # numbers, stop the ranges they concentrate on (numbers alike but for their
    # last circuit_range_digits), or the whole country when they spread across it
    # at circuit_surge times its usual volume (over circuit_history s), for circuit_cooloff s.
    circuit_window: int = setting(20, bounds=Range(1, 1000), doc="Ended calls of a country the breaker judges.")
    circuit_min_verified: float = setting(
        0.2, bounds=Range(0, 1, "is a share between 0 and 1, e.g. 0.2"), doc="Under this share verified looks pumped."
    )
    circuit_min_networks: int = setting(3, doc="Client networks the unanswered calls came from (1..circuit_window).")
    circuit_min_numbers: int = setting(5, doc="Numbers they went to (1..circuit_window).")
    circuit_range_digits: int = setting(4, bounds=Range(1, 10), doc="A range: numbers alike but for these last digits.")
    circuit_surge: float = setting(
        3.0,
        bounds=Range(1, None, "is a factor of at least 1, e.g. 3"),
        doc="A whole country stops at this many times its usual volume.",
    )
    circuit_history: int = setting(
        7 * 24 * 3600,
        bounds=Range(3600, None, unit="seconds"),
        doc="Seconds of history its usual volume is taken over.",
    )
    circuit_cooloff: int = setting(3600, doc="Seconds a break lasts.")

    # -- the operators' pages --
    admin_user: str = setting("admin", doc="The operators' user name.")
    admin_password_hash: Secret | None = setting(
        None,
        doc=(
            "From `voice2fa hash-password`. None: a random password in sandbox mode, printed at start-up; "
            "outside sandbox mode the operators' pages are off."
        ),
    )
    limit_admin_failures: str = setting("5/minute;20/hour", limits=True, doc="Failed logins per client IP.")
    conversion_alert: float = setting(0.2, doc="Conversion (verified / calls placed) under this share is highlighted.")

    # -- the OpenID Connect hand-off (README: "Use it in your sign-up flow") --
    public_url: str | None = setting(
        None,
        clean=_issuer,
        doc=(
            "The issuer, where sites reach voice2fa: https://verify.example.com. None: in sandbox mode the "
            "address each request came to; otherwise the hand-off is off."
        ),
    )
    oidc_signing_key_file: str | None = setting(
        None,
        doc=(
            "A PEM file with the RSA key that signs ID tokens. None: keys live in the database "
            "(one is made on first start; `voice2fa keys rotate`)."
        ),
    )
    oidc_code_lifetime: int = setting(
        60, bounds=Range(10, 600, unit="seconds"), doc="Seconds an authorization code can be exchanged."
    )
    oidc_request_lifetime: int = setting(
        1800,
        bounds=Range(60, 86400, unit="seconds"),
        doc="Seconds a person has, from the site's redirect, to verify their number.",
    )
    oidc_token_lifetime: int = setting(
        300,
        bounds=Range(60, 3600, "must be between 60 and 3600 seconds (ID tokens live minutes, not hours)"),
        doc="Seconds an ID token and an access token are valid.",
    )
    limit_token_failures_per_ip: str = setting(
        "10/minute;50/hour", limits=True, doc="Failed token requests per client IP."
    )
    limit_token_failures_per_client: str = setting(
        "20/minute;200/hour", limits=True, doc="Failed token requests per client."
    )
    limit_authorize_per_ip: str = setting(
        "20/minute;100/hour",
        limits=True,
        doc=("Authorization requests per client IP: each one that passes is stored until it expires."),
    )

    # -- the JSON API (README: "The JSON API") --
    limit_api_calls_per_client: str = setting(
        "30/minute;300/hour",
        limits=True,
        doc=("Creates and resends (each places a call) per API client, on top of every limit of the page."),
    )
    limit_api_auth_failures_per_ip: str = setting(
        "10/minute;50/hour", limits=True, doc="Requests with wrong or missing client credentials, per socket peer."
    )

    provider_connect_timeout: float = setting(5.0, doc="httpx's connect timeout towards the provider, in seconds.")
    provider_read_timeout: float = setting(10.0, doc="httpx's read timeout towards the provider, in seconds.")
    provider_deadline: float = setting(15.0, doc="A hard deadline per request to the provider, in seconds.")

    # -- the HTTP server of `voice2fa serve` (README: "The server's edges") --
    max_header_bytes: int = setting(
        16 * 1024, bounds=Range(1024, 1024 * 1024), doc="Bytes of a request line and headers together; past it: 431."
    )
    max_headers: int = setting(100, bounds=Range(10, 1000), doc="Header fields in one request; past it: 431.")
    headers_timeout: float = setting(
        10.0, bounds=SECONDS, doc=("Seconds from a connection (or a request's first byte) to the end of its headers.")
    )
    request_timeout: float = setting(
        30.0, bounds=SECONDS, doc="Seconds from a request's first byte to the end of its body."
    )
    shutdown_timeout: int = setting(
        10, bounds=SECONDS, doc=("Seconds a stopping server waits for requests in flight before it cancels them.")
    )
    access_log: bool = setting(
        False, doc="uvicorn's line per request; off: the attempts table is the log of what matters."
    )
    templates_reload: bool | None = setting(
        None, doc=("Jinja2 looks for changed template files at each render. None: in sandbox mode only.")
    )
    database_pool_size: int = setting(
        10, bounds=Range(1, 100, unit=PER_WORKER), doc="PostgreSQL connections each worker process keeps..."
    )
    database_max_overflow: int = setting(
        10, bounds=Range(0, 100, unit=PER_WORKER), doc="... and may open beyond that under load."
    )

    @property
    def sandbox(self) -> bool:
        """No provider in PROVIDERS has credentials: the in-process sandbox plays them all."""
        return not any(self.has_credentials(name) for name in self.providers)

    def has_credentials(self, provider: str) -> bool:
        """The credentials `provider` needs are set."""
        if provider == MESSAGEBIRD:
            return self.messagebird_api_key is not None
        return provider == TWILIO and self.twilio_configured

    @property
    def twilio_configured(self) -> bool:
        """All three Twilio credentials are set."""
        return bool(self.twilio_account_sid and self.twilio_auth_token and self.twilio_verify_service_sid)

    @property
    def reload_templates(self) -> bool:
        return self.sandbox if self.templates_reload is None else self.templates_reload

    @property
    def secure_cookies(self) -> bool:
        return (not self.sandbox) if self.cookie_secure is None else self.cookie_secure

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, env_file: str | Path | None = ".env") -> Settings:
        """Read the settings from `environ` (default os.environ) and `env_file`."""
        path = Path(env_file) if env_file else None
        config = Config(path if path and path.is_file() else None, environ=os.environ if environ is None else environ)
        settings = cls(**env.read(cls, config))
        settings.validate()
        return settings

    def validate(self) -> None:
        """Refuse settings the provider or the flow cannot work with, at start-up (webapp.settings_checks)."""
        settings_checks.validate(self)
