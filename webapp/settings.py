"""Settings, read once from the environment (or a `.env` file) with typed casts.

Every setting has a safe default: with nothing set, voice2fa runs in sandbox
mode on a SQLite file in the working directory and places no real calls.
Tests build their own `Settings(...)`; nothing patches a global.
"""

from __future__ import annotations

import dataclasses
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from limits import parse_many
from starlette.config import Config
from starlette.datastructures import CommaSeparatedStrings, Secret

from webapp.passwords import check_hash
from webapp.phone import NUMBER_TYPES
from webapp.provider import MESSAGEBIRD, NAMES, TWILIO, CallOptions
from webapp.provider.twilio import DEFAULT_BASE_URL as TWILIO_BASE_URL, SERVICE_SID

DEFAULT_BASE_URL = "https://rest.messagebird.com"
#: Hosts where plain http is allowed for development (RFC 8252 loopback).
LOOPBACK_HOSTS = ("localhost", "127.0.0.1")
#: The Account SID (AC…) or an API key SID (SK…): the username of Twilio's HTTP Basic.
TWILIO_USERNAME = re.compile(r"(AC|SK)[0-9a-fA-F]{32}")


#: The settings each provider needs, for messages.
CREDENTIALS = {
    MESSAGEBIRD: "MESSAGEBIRD_API_KEY",
    TWILIO: "TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and TWILIO_VERIFY_SERVICE_SID",
}


@dataclass(frozen=True)
class Settings:
    #: The Verify providers, in the order a start tries them (webapp.provider.failover).
    #: None of them with credentials: sandbox mode, calls go to the in-process sandbox.
    providers: tuple[str, ...] = (MESSAGEBIRD,)
    #: A provider that answered this many starts in a row "unavailable" is skipped
    #: for provider_breaker_seconds (per process).
    provider_breaker_failures: int = 5
    provider_breaker_seconds: int = 30
    messagebird_api_key: Secret | None = None
    messagebird_base_url: str = DEFAULT_BASE_URL
    #: Twilio Verify: all three or none.
    twilio_account_sid: str | None = None
    twilio_auth_token: Secret | None = None
    twilio_verify_service_sid: str | None = None
    twilio_base_url: str = TWILIO_BASE_URL
    database_url: str = "sqlite+aiosqlite:///voice2fa.db"
    ratelimit_storage_url: str = "memory://"
    #: Signs the session cookie. Unset: a random key per process (sessions
    #: end on restart); `voice2fa serve` shares one across its workers.
    secret_key: Secret = field(default_factory=lambda: Secret(secrets.token_urlsafe(32)))
    #: None: secure cookies whenever a real key is set (production), not in sandbox mode.
    cookie_secure: bool | None = None
    session_max_age: int = 3600
    trusted_proxies: tuple[str, ...] = ()

    default_region: str = "NL"
    locale: str = "en"
    call: CallOptions = CallOptions()
    #: Seconds before "Call me again" is allowed.
    resend_cooldown: int = 30

    # -- the abuse guard (README: "Abuse protection" gives the reason for each) --
    #: Fail closed: with the limiter storage unreachable, no call is placed.
    ratelimit_fail_open: bool = False
    ratelimit_key_prefix: str = "voice2fa"
    limit_start_per_ip: str = "5/minute;20/hour"
    limit_start_per_number: str = "1/30seconds;3/10minutes;5/hour;10/day"
    limit_check_per_ip: str = "10/minute"
    limit_calls_global: str = "60/minute;600/hour"
    limit_calls_per_country: str = "100/hour"
    #: Per-IP counters count an IPv6 client by its network of this many bits.
    limit_ipv6_prefix: int = 64
    #: Identical refusals within this many seconds are one attempts row with a count (0: a row each).
    attempts_fold_seconds: int = 60
    #: Empty: every country phonenumbers knows.
    allowed_countries: tuple[str, ...] = ()
    denied_countries: tuple[str, ...] = ()
    blocked_number_types: tuple[str, ...] = (
        "premium_rate", "shared_cost", "uan", "pager", "voicemail", "personal_number",
    )
    allow_voip: bool = True
    #: Satellite and other non-geographic "international network" numbers
    #: (phonenumbers region 001: +870, +881, +882, +883, ...): costly, seldom a person's.
    allow_international_networks: bool = False
    #: The circuit breaker (webapp/circuit.py): when fewer than circuit_min_verified
    #: of a country's last circuit_window ended calls were verified, and the
    #: unanswered ones came from circuit_min_networks networks to circuit_min_numbers
    #: numbers, stop the ranges they concentrate on (numbers alike but for their
    #: last circuit_range_digits), or the whole country when they spread across it
    #: at circuit_surge times its usual volume (over circuit_history s), for circuit_cooloff s.
    circuit_window: int = 20
    circuit_min_verified: float = 0.2
    circuit_min_networks: int = 3
    circuit_min_numbers: int = 5
    circuit_range_digits: int = 4
    circuit_surge: float = 3.0
    circuit_history: int = 7 * 24 * 3600
    circuit_cooloff: int = 3600

    # -- the operators' pages --
    admin_user: str = "admin"
    #: From `voice2fa hash-password`. None: a random password in sandbox mode,
    #: printed at start-up; outside sandbox mode the operators' pages are off.
    admin_password_hash: Secret | None = None
    #: Failed logins per client IP.
    limit_admin_failures: str = "5/minute;20/hour"
    #: Conversion (verified / calls placed) under this share is highlighted.
    conversion_alert: float = 0.2

    # -- the OpenID Connect hand-off (README: "Use it in your sign-up flow") --
    #: The issuer, where sites reach voice2fa: https://verify.example.com. None:
    #: in sandbox mode the address each request came to; otherwise the hand-off is off.
    public_url: str | None = None
    #: A PEM file with the RSA key that signs ID tokens. None: keys live in the
    #: database (one is made on first start; `voice2fa keys rotate`).
    oidc_signing_key_file: str | None = None
    #: Seconds an authorization code can be exchanged.
    oidc_code_lifetime: int = 60
    #: Seconds a person has, from the site's redirect, to verify their number.
    oidc_request_lifetime: int = 1800
    #: Seconds an ID token and an access token are valid.
    oidc_token_lifetime: int = 300
    #: Failed token requests, per client IP and per client.
    limit_token_failures_per_ip: str = "10/minute;50/hour"  # noqa: S105 - a limit, not a token
    limit_token_failures_per_client: str = "20/minute;200/hour"  # noqa: S105 - a limit, not a token
    #: Authorization requests per client IP: each one that passes is stored until it expires.
    limit_authorize_per_ip: str = "20/minute;100/hour"

    # -- the JSON API (README: "The JSON API") --
    #: Creates and resends (each places a call) per API client, on top of every limit of the page.
    limit_api_calls_per_client: str = "30/minute;300/hour"
    #: Requests with wrong or missing client credentials, per socket peer.
    limit_api_auth_failures_per_ip: str = "10/minute;50/hour"

    #: httpx timeouts towards the provider, and a hard deadline per request.
    provider_connect_timeout: float = 5.0
    provider_read_timeout: float = 10.0
    provider_deadline: float = 15.0

    # -- the HTTP server of `voice2fa serve` (README: "The server's edges") --
    #: Bytes of a request line and headers together; past it: 431.
    max_header_bytes: int = 16 * 1024
    #: Header fields in one request; past it: 431.
    max_headers: int = 100
    #: Seconds from a connection (or a request's first byte) to the end of its headers.
    headers_timeout: float = 10.0
    #: Seconds from a request's first byte to the end of its body.
    request_timeout: float = 30.0
    #: Seconds a stopping server waits for requests in flight before it cancels them.
    shutdown_timeout: int = 10
    #: uvicorn's line per request; off: the attempts table is the log of what matters.
    access_log: bool = False
    #: Jinja2 looks for changed template files at each render. None: in sandbox mode only.
    templates_reload: bool | None = None
    #: PostgreSQL connections each worker process keeps, and may open beyond that under load.
    database_pool_size: int = 10
    database_max_overflow: int = 10

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
        api_key = config("MESSAGEBIRD_API_KEY", cast=str, default="").strip()
        secret = config("SECRET_KEY", cast=str, default="")
        admin_hash = config("ADMIN_PASSWORD_HASH", cast=str, default="").strip()
        twilio_token = config("TWILIO_AUTH_TOKEN", cast=str, default="").strip()
        defaults = cls()
        call = CallOptions(
            template=config("VERIFY_TEMPLATE", cast=str, default=defaults.call.template),
            language=config("VERIFY_LANGUAGE", cast=str, default=defaults.call.language),
            voice=config("VERIFY_VOICE", cast=str, default=defaults.call.voice),
            token_length=config("VERIFY_TOKEN_LENGTH", cast=int, default=defaults.call.token_length),
            timeout=config("VERIFY_TIMEOUT", cast=int, default=defaults.call.timeout),
            max_attempts=config("VERIFY_MAX_ATTEMPTS", cast=int, default=defaults.call.max_attempts),
            originator=config("VERIFY_ORIGINATOR", cast=str, default="") or None,
        )
        settings = cls(
            providers=tuple(
                name.strip().lower()
                for name in config("PROVIDERS", cast=CommaSeparatedStrings, default=MESSAGEBIRD)
                if name.strip()
            ),
            provider_breaker_failures=config(
                "PROVIDER_BREAKER_FAILURES", cast=int, default=defaults.provider_breaker_failures),
            provider_breaker_seconds=config(
                "PROVIDER_BREAKER_SECONDS", cast=int, default=defaults.provider_breaker_seconds),
            messagebird_api_key=Secret(api_key) if api_key else None,
            messagebird_base_url=config("MESSAGEBIRD_BASE_URL", cast=str, default=DEFAULT_BASE_URL),
            twilio_account_sid=config("TWILIO_ACCOUNT_SID", cast=str, default="").strip() or None,
            twilio_auth_token=Secret(twilio_token) if twilio_token else None,
            twilio_verify_service_sid=config("TWILIO_VERIFY_SERVICE_SID", cast=str, default="").strip() or None,
            twilio_base_url=config("TWILIO_BASE_URL", cast=str, default=TWILIO_BASE_URL).strip(),
            database_url=config("DATABASE_URL", cast=str, default=defaults.database_url),
            ratelimit_storage_url=config("RATELIMIT_STORAGE_URL", cast=str, default=defaults.ratelimit_storage_url),
            secret_key=Secret(secret) if secret else defaults.secret_key,
            cookie_secure=config("COOKIE_SECURE", cast=_optional_bool, default=None),
            session_max_age=config("SESSION_MAX_AGE", cast=int, default=defaults.session_max_age),
            trusted_proxies=tuple(config("TRUSTED_PROXIES", cast=CommaSeparatedStrings, default="")),
            default_region=config("DEFAULT_REGION", cast=str, default=defaults.default_region).upper(),
            locale=config("LOCALE", cast=str, default=defaults.locale),
            call=call,
            resend_cooldown=config("RESEND_COOLDOWN", cast=int, default=defaults.resend_cooldown),
            provider_connect_timeout=config("PROVIDER_CONNECT_TIMEOUT", cast=float, default=5.0),
            provider_read_timeout=config("PROVIDER_READ_TIMEOUT", cast=float, default=10.0),
            provider_deadline=config("PROVIDER_DEADLINE", cast=float, default=15.0),
            ratelimit_fail_open=config("RATELIMIT_FAIL_OPEN", cast=bool, default=False),
            ratelimit_key_prefix=config("RATELIMIT_KEY_PREFIX", cast=str, default=defaults.ratelimit_key_prefix),
            limit_start_per_ip=config("LIMIT_START_PER_IP", cast=str, default=defaults.limit_start_per_ip),
            limit_start_per_number=config("LIMIT_START_PER_NUMBER", cast=str, default=defaults.limit_start_per_number),
            limit_check_per_ip=config("LIMIT_CHECK_PER_IP", cast=str, default=defaults.limit_check_per_ip),
            limit_calls_global=config("LIMIT_CALLS_GLOBAL", cast=str, default=defaults.limit_calls_global),
            limit_calls_per_country=config("LIMIT_CALLS_PER_COUNTRY", cast=str, default=defaults.limit_calls_per_country),
            limit_ipv6_prefix=config("LIMIT_IPV6_PREFIX", cast=int, default=defaults.limit_ipv6_prefix),
            attempts_fold_seconds=config(
                "ATTEMPTS_FOLD_SECONDS", cast=int, default=defaults.attempts_fold_seconds),
            allowed_countries=_regions(config("ALLOWED_COUNTRIES", cast=str, default="")),
            denied_countries=_regions(config("DENIED_COUNTRIES", cast=str, default="")),
            blocked_number_types=tuple(
                t.strip().lower()
                for t in config("BLOCKED_NUMBER_TYPES", cast=CommaSeparatedStrings,
                                default=",".join(defaults.blocked_number_types))
                if t.strip()
            ),
            allow_voip=config("ALLOW_VOIP", cast=bool, default=True),
            allow_international_networks=config("ALLOW_INTERNATIONAL_NETWORKS", cast=bool, default=False),
            circuit_window=config("CIRCUIT_WINDOW", cast=int, default=defaults.circuit_window),
            circuit_min_verified=config("CIRCUIT_MIN_VERIFIED", cast=float, default=defaults.circuit_min_verified),
            circuit_min_networks=config("CIRCUIT_MIN_NETWORKS", cast=int, default=defaults.circuit_min_networks),
            circuit_min_numbers=config("CIRCUIT_MIN_NUMBERS", cast=int, default=defaults.circuit_min_numbers),
            circuit_range_digits=config("CIRCUIT_RANGE_DIGITS", cast=int, default=defaults.circuit_range_digits),
            circuit_surge=config("CIRCUIT_SURGE", cast=float, default=defaults.circuit_surge),
            circuit_history=config("CIRCUIT_HISTORY", cast=int, default=defaults.circuit_history),
            circuit_cooloff=config("CIRCUIT_COOLOFF", cast=int, default=defaults.circuit_cooloff),
            admin_user=config("ADMIN_USER", cast=str, default=defaults.admin_user),
            admin_password_hash=Secret(admin_hash) if admin_hash else None,
            limit_admin_failures=config("LIMIT_ADMIN_FAILURES", cast=str, default=defaults.limit_admin_failures),
            conversion_alert=config("CONVERSION_ALERT", cast=float, default=defaults.conversion_alert),
            max_header_bytes=config("MAX_HEADER_BYTES", cast=int, default=defaults.max_header_bytes),
            max_headers=config("MAX_HEADERS", cast=int, default=defaults.max_headers),
            headers_timeout=config("HEADERS_TIMEOUT", cast=float, default=defaults.headers_timeout),
            request_timeout=config("REQUEST_TIMEOUT", cast=float, default=defaults.request_timeout),
            shutdown_timeout=config("SHUTDOWN_TIMEOUT", cast=int, default=defaults.shutdown_timeout),
            access_log=config("ACCESS_LOG", cast=bool, default=defaults.access_log),
            templates_reload=_named_optional_bool("TEMPLATES_RELOAD", config("TEMPLATES_RELOAD", cast=str, default="")),
            database_pool_size=config("DATABASE_POOL_SIZE", cast=int, default=defaults.database_pool_size),
            database_max_overflow=config("DATABASE_MAX_OVERFLOW", cast=int, default=defaults.database_max_overflow),
            public_url=config("PUBLIC_URL", cast=str, default="").strip().rstrip("/") or None,
            oidc_signing_key_file=config("OIDC_SIGNING_KEY_FILE", cast=str, default="").strip() or None,
            oidc_code_lifetime=config("OIDC_CODE_LIFETIME", cast=int, default=defaults.oidc_code_lifetime),
            oidc_request_lifetime=config("OIDC_REQUEST_LIFETIME", cast=int, default=defaults.oidc_request_lifetime),
            oidc_token_lifetime=config("OIDC_TOKEN_LIFETIME", cast=int, default=defaults.oidc_token_lifetime),
            limit_token_failures_per_ip=config(
                "LIMIT_TOKEN_FAILURES_PER_IP", cast=str, default=defaults.limit_token_failures_per_ip),
            limit_token_failures_per_client=config(
                "LIMIT_TOKEN_FAILURES_PER_CLIENT", cast=str, default=defaults.limit_token_failures_per_client),
            limit_authorize_per_ip=config(
                "LIMIT_AUTHORIZE_PER_IP", cast=str, default=defaults.limit_authorize_per_ip),
            limit_api_calls_per_client=config(
                "LIMIT_API_CALLS_PER_CLIENT", cast=str, default=defaults.limit_api_calls_per_client),
            limit_api_auth_failures_per_ip=config(
                "LIMIT_API_AUTH_FAILURES_PER_IP", cast=str, default=defaults.limit_api_auth_failures_per_ip),
        )
        settings.validate()
        return settings

    def validate(self) -> None:
        """Refuse settings the provider or the flow cannot work with, at start-up."""
        if not 6 <= self.call.token_length <= 10:
            raise ValueError("VERIFY_TOKEN_LENGTH must be between 6 and 10")
        if not 1 <= self.call.max_attempts <= 10:
            raise ValueError("VERIFY_MAX_ATTEMPTS must be between 1 and 10")
        if self.call.timeout < 30:
            raise ValueError("VERIFY_TIMEOUT must be at least 30 seconds")
        if "%token" not in self.call.template:
            raise ValueError("VERIFY_TEMPLATE must contain %token")
        if self.call.voice not in ("male", "female"):
            raise ValueError("VERIFY_VOICE must be male or female")
        self._validate_twilio()
        self._validate_providers()
        if self.admin_password_hash is not None:
            check_hash(str(self.admin_password_hash))
        if not self.admin_user or ":" in self.admin_user:
            raise ValueError("ADMIN_USER must be a non-empty name without ':'")
        for name in ("limit_start_per_ip", "limit_start_per_number", "limit_check_per_ip",
                     "limit_calls_global", "limit_calls_per_country", "limit_admin_failures",
                     "limit_token_failures_per_ip", "limit_token_failures_per_client", "limit_authorize_per_ip",
                     "limit_api_calls_per_client", "limit_api_auth_failures_per_ip"):
            value = getattr(self, name)
            try:
                parse_many(value)
            except ValueError:
                raise ValueError(f"{name.upper()} is not a list of limits like '5/minute;20/hour': {value!r}") from None
        unknown = set(self.blocked_number_types) - set(NUMBER_TYPES)
        if unknown:
            raise ValueError(f"BLOCKED_NUMBER_TYPES has unknown types {sorted(unknown)}; known: {sorted(NUMBER_TYPES)}")
        if not 1 <= self.circuit_window <= 1000:
            raise ValueError("CIRCUIT_WINDOW must be between 1 and 1000")
        if not 0 <= self.circuit_min_verified <= 1:
            raise ValueError("CIRCUIT_MIN_VERIFIED is a share between 0 and 1, e.g. 0.2")
        if not 1024 <= self.max_header_bytes <= 1024 * 1024:
            raise ValueError("MAX_HEADER_BYTES must be between 1024 and 1048576")
        if not 10 <= self.max_headers <= 1000:
            raise ValueError("MAX_HEADERS must be between 10 and 1000")
        for name in ("headers_timeout", "request_timeout", "shutdown_timeout"):
            if not 0 < getattr(self, name) <= 3600:
                raise ValueError(f"{name.upper()} must be more than 0 and at most 3600 seconds")
        if not 1 <= self.database_pool_size <= 100:
            raise ValueError("DATABASE_POOL_SIZE must be between 1 and 100 (connections per worker process)")
        if not 0 <= self.database_max_overflow <= 100:
            raise ValueError("DATABASE_MAX_OVERFLOW must be between 0 and 100 (connections per worker process)")
        if self.request_timeout < self.headers_timeout:
            raise ValueError("REQUEST_TIMEOUT must be at least HEADERS_TIMEOUT: it includes the headers")
        for name in ("circuit_min_networks", "circuit_min_numbers"):
            if not 1 <= getattr(self, name) <= self.circuit_window:
                raise ValueError(f"{name.upper()} must be between 1 and CIRCUIT_WINDOW ({self.circuit_window})")
        if not 1 <= self.circuit_range_digits <= 10:
            raise ValueError("CIRCUIT_RANGE_DIGITS must be between 1 and 10")
        if self.circuit_surge < 1:
            raise ValueError("CIRCUIT_SURGE is a factor of at least 1, e.g. 3")
        if self.circuit_history < 3600:
            raise ValueError("CIRCUIT_HISTORY must be at least 3600 seconds")
        if not 1 <= self.limit_ipv6_prefix <= 128:
            raise ValueError("LIMIT_IPV6_PREFIX must be between 1 and 128, e.g. 64")
        if not 0 <= self.attempts_fold_seconds <= 3600:
            raise ValueError("ATTEMPTS_FOLD_SECONDS must be between 0 (no folding) and 3600 seconds, e.g. 60")
        if self.public_url is not None and not is_issuer_url(self.public_url):
            raise ValueError("PUBLIC_URL must be an https:// address without query or fragment "
                             f"(http:// only for localhost or 127.0.0.1), e.g. https://verify.example.com: {self.public_url!r}")
        if not 10 <= self.oidc_code_lifetime <= 600:
            raise ValueError("OIDC_CODE_LIFETIME must be between 10 and 600 seconds")
        if not 60 <= self.oidc_request_lifetime <= 86400:
            raise ValueError("OIDC_REQUEST_LIFETIME must be between 60 and 86400 seconds")
        if not 60 <= self.oidc_token_lifetime <= 3600:
            raise ValueError("OIDC_TOKEN_LIFETIME must be between 60 and 3600 seconds (ID tokens live minutes, not hours)")

    def _validate_providers(self) -> None:
        if not self.providers:
            raise ValueError(f"PROVIDERS must name at least one provider, in the order to try them: {', '.join(NAMES)}")
        unknown = [name for name in self.providers if name not in NAMES]
        if unknown:
            raise ValueError(f"PROVIDERS has unknown providers {unknown}; known: {', '.join(NAMES)}")
        if len(set(self.providers)) < len(self.providers):
            raise ValueError(f"PROVIDERS names a provider twice: {','.join(self.providers)}")
        # Credentials anywhere mean real calls: then every listed provider needs its own, and a
        # provider left without them is a mistake, never a quiet fall back to sandbox mode.
        if any(self.has_credentials(name) for name in NAMES):
            for name in self.providers:
                if not self.has_credentials(name):
                    raise ValueError(
                        f"PROVIDERS lists {name}, but {CREDENTIALS[name]} not set: set them, or take {name} "
                        "off PROVIDERS (sandbox mode is when no provider has credentials)"
                    )
        if not 1 <= self.provider_breaker_failures <= 1000:
            raise ValueError("PROVIDER_BREAKER_FAILURES must be between 1 and 1000")
        if not 1 <= self.provider_breaker_seconds <= 86400:
            raise ValueError("PROVIDER_BREAKER_SECONDS must be between 1 and 86400")

    def _validate_twilio(self) -> None:
        given = {
            "TWILIO_ACCOUNT_SID": self.twilio_account_sid,
            "TWILIO_AUTH_TOKEN": self.twilio_auth_token,
            "TWILIO_VERIFY_SERVICE_SID": self.twilio_verify_service_sid,
        }
        missing = [name for name, value in given.items() if not value]
        if 0 < len(missing) < len(given):
            raise ValueError(f"the Twilio settings go together: {', '.join(missing)} missing")
        if self.twilio_account_sid and not TWILIO_USERNAME.fullmatch(self.twilio_account_sid):
            raise ValueError("TWILIO_ACCOUNT_SID is the Account SID (AC…) or an API key SID (SK…): 34 characters")
        if self.twilio_verify_service_sid and not SERVICE_SID.fullmatch(self.twilio_verify_service_sid):
            raise ValueError("TWILIO_VERIFY_SERVICE_SID is the Verify Service's SID: VA followed by 32 hex digits")
        if not re.fullmatch(r"https?://[^/\s]+(/\S*)?", self.twilio_base_url):
            raise ValueError(f"TWILIO_BASE_URL must be a URL like {TWILIO_BASE_URL}, got {self.twilio_base_url!r}")


def is_issuer_url(url: str) -> bool:
    """An https URL (http only on a loopback host) with no query or fragment: what OIDC allows as an issuer."""
    parts = urlsplit(url)
    if parts.query or parts.fragment or not parts.hostname or parts.username or parts.password:
        return False
    return parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS)

def _regions(value: str) -> tuple[str, ...]:
    return tuple(region.strip().upper() for region in value.split(",") if region.strip())


def _named_optional_bool(name: str, value: str) -> bool | None:
    try:
        return _optional_bool(value)
    except ValueError:
        raise ValueError(f"{name} must be true, false or auto, not {value!r}") from None


def _optional_bool(value: str) -> bool | None:
    value = value.strip().lower()
    if value in ("", "auto"):
        return None
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true, false or auto, got {value!r}")
