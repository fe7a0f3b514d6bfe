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

from starlette.config import Config
from starlette.datastructures import CommaSeparatedStrings, Secret

from limits import parse_many

from webapp.passwords import check_hash
from webapp.phone import NUMBER_TYPES
from webapp.provider import CallOptions
from webapp.provider.twilio import DEFAULT_BASE_URL as TWILIO_BASE_URL
from webapp.provider.twilio import SERVICE_SID

DEFAULT_BASE_URL = "https://rest.messagebird.com"
#: The Account SID (AC…) or an API key SID (SK…): the username of Twilio's HTTP Basic.
TWILIO_USERNAME = re.compile(r"(AC|SK)[0-9a-fA-F]{32}")


@dataclass(frozen=True)
class Settings:
    #: None means sandbox mode: calls go to the in-process sandbox.
    messagebird_api_key: Secret | None = None
    messagebird_base_url: str = DEFAULT_BASE_URL
    #: Twilio Verify: all three or none. Read and checked here; the flow does
    #: not choose Twilio yet (the provider list comes with PROVIDERS).
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
    #: Empty: every country phonenumbers knows.
    allowed_countries: tuple[str, ...] = ()
    denied_countries: tuple[str, ...] = ()
    blocked_number_types: tuple[str, ...] = (
        "premium_rate", "shared_cost", "uan", "pager", "voicemail", "personal_number",
    )
    allow_voip: bool = True
    #: Stop calling a country when fewer than circuit_min_verified of its
    #: last circuit_window settled calls ended verified, for circuit_cooloff s.
    circuit_window: int = 20
    circuit_min_verified: float = 0.2
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

    #: httpx timeouts towards the provider, and a hard deadline per request.
    provider_connect_timeout: float = 5.0
    provider_read_timeout: float = 10.0
    provider_deadline: float = 15.0

    @property
    def sandbox(self) -> bool:
        return self.messagebird_api_key is None

    @property
    def twilio_configured(self) -> bool:
        """All three Twilio credentials are set."""
        return bool(self.twilio_account_sid and self.twilio_auth_token and self.twilio_verify_service_sid)

    @property
    def secure_cookies(self) -> bool:
        return (not self.sandbox) if self.cookie_secure is None else self.cookie_secure

    def replace(self, **changes: object) -> Settings:
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
            allowed_countries=_regions(config("ALLOWED_COUNTRIES", cast=str, default="")),
            denied_countries=_regions(config("DENIED_COUNTRIES", cast=str, default="")),
            blocked_number_types=tuple(
                t.strip().lower()
                for t in config("BLOCKED_NUMBER_TYPES", cast=CommaSeparatedStrings,
                                default=",".join(defaults.blocked_number_types))
                if t.strip()
            ),
            allow_voip=config("ALLOW_VOIP", cast=bool, default=True),
            circuit_window=config("CIRCUIT_WINDOW", cast=int, default=defaults.circuit_window),
            circuit_min_verified=config("CIRCUIT_MIN_VERIFIED", cast=float, default=defaults.circuit_min_verified),
            circuit_cooloff=config("CIRCUIT_COOLOFF", cast=int, default=defaults.circuit_cooloff),
            admin_user=config("ADMIN_USER", cast=str, default=defaults.admin_user),
            admin_password_hash=Secret(admin_hash) if admin_hash else None,
            limit_admin_failures=config("LIMIT_ADMIN_FAILURES", cast=str, default=defaults.limit_admin_failures),
            conversion_alert=config("CONVERSION_ALERT", cast=float, default=defaults.conversion_alert),
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
        if self.admin_password_hash is not None:
            check_hash(str(self.admin_password_hash))
        if not self.admin_user or ":" in self.admin_user:
            raise ValueError("ADMIN_USER must be a non-empty name without ':'")
        for name in ("limit_start_per_ip", "limit_start_per_number", "limit_check_per_ip",
                     "limit_calls_global", "limit_calls_per_country", "limit_admin_failures"):
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


def _regions(value: str) -> tuple[str, ...]:
    return tuple(region.strip().upper() for region in value.split(",") if region.strip())


def _optional_bool(value: str) -> bool | None:
    value = value.strip().lower()
    if value in ("", "auto"):
        return None
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true, false or auto, got {value!r}")
