"""The start-up checks of settings that go together, beyond each field's own bounds (`env.check`).

`Settings.validate` runs `validate`: the call's template and voice, the
providers listed and the credentials each needs (Twilio's three together),
the operators' login, the number types, the server's timeouts, the circuit's
thresholds against its window, and the issuer (`PUBLIC_URL`).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from webapp import env
from webapp.passwords import check_hash
from webapp.phone import NUMBER_TYPES
from webapp.provider import MESSAGEBIRD, NAMES, TWILIO
from webapp.provider.twilio import DEFAULT_BASE_URL as TWILIO_BASE_URL, SERVICE_SID

if TYPE_CHECKING:
    from webapp.settings import Settings

#: Hosts where plain http is allowed for development (RFC 8252 loopback).
LOOPBACK_HOSTS = ("localhost", "127.0.0.1")
#: The Account SID (AC…) or an API key SID (SK…): the username of Twilio's HTTP Basic.
TWILIO_USERNAME = re.compile(r"(AC|SK)[0-9a-fA-F]{32}")
#: The settings each provider needs, for messages.
CREDENTIALS = {
    MESSAGEBIRD: "MESSAGEBIRD_API_KEY",
    TWILIO: "TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and TWILIO_VERIFY_SERVICE_SID",
}


def validate(settings: Settings) -> None:
    """Refuse settings the provider or the flow cannot work with, at start-up."""
    env.check(settings)
    if "%token" not in settings.call.template:
        raise ValueError("VERIFY_TEMPLATE must contain %token")
    if settings.call.voice not in ("male", "female"):
        raise ValueError("VERIFY_VOICE must be male or female")
    _validate_twilio(settings)
    _validate_providers(settings)
    if settings.admin_password_hash is not None:
        check_hash(str(settings.admin_password_hash))
    if not settings.admin_user or ":" in settings.admin_user:
        raise ValueError("ADMIN_USER must be a non-empty name without ':'")
    unknown = set(settings.blocked_number_types) - set(NUMBER_TYPES)
    if unknown:
        raise ValueError(f"BLOCKED_NUMBER_TYPES has unknown types {sorted(unknown)}; known: {sorted(NUMBER_TYPES)}")
    if settings.request_timeout < settings.headers_timeout:
        raise ValueError("REQUEST_TIMEOUT must be at least HEADERS_TIMEOUT: it includes the headers")
    for name in ("circuit_min_networks", "circuit_min_numbers"):
        if not 1 <= getattr(settings, name) <= settings.circuit_window:
            raise ValueError(f"{name.upper()} must be between 1 and CIRCUIT_WINDOW ({settings.circuit_window})")
    if settings.public_url is not None and not is_issuer_url(settings.public_url):
        raise ValueError(
            "PUBLIC_URL must be an https:// address without query or fragment "
            f"(http:// only for localhost or 127.0.0.1), e.g. https://verify.example.com: {settings.public_url!r}"
        )


def _validate_providers(settings: Settings) -> None:
    providers = settings.providers
    if not providers:
        raise ValueError(f"PROVIDERS must name at least one provider, in the order to try them: {', '.join(NAMES)}")
    unknown = [name for name in providers if name not in NAMES]
    if unknown:
        raise ValueError(f"PROVIDERS has unknown providers {unknown}; known: {', '.join(NAMES)}")
    if len(set(providers)) < len(providers):
        raise ValueError(f"PROVIDERS names a provider twice: {','.join(providers)}")
    # Credentials anywhere mean real calls: then every listed provider needs its own, and a
    # provider left without them is a mistake, never a quiet fall back to sandbox mode.
    if any(settings.has_credentials(name) for name in NAMES):
        for name in providers:
            if not settings.has_credentials(name):
                raise ValueError(
                    f"PROVIDERS lists {name}, but {CREDENTIALS[name]} not set: set them, or take {name} "
                    "off PROVIDERS (sandbox mode is when no provider has credentials)"
                )


def _validate_twilio(settings: Settings) -> None:
    given = {
        "TWILIO_ACCOUNT_SID": settings.twilio_account_sid,
        "TWILIO_AUTH_TOKEN": settings.twilio_auth_token,
        "TWILIO_VERIFY_SERVICE_SID": settings.twilio_verify_service_sid,
    }
    missing = [name for name, value in given.items() if not value]
    if 0 < len(missing) < len(given):
        raise ValueError(f"the Twilio settings go together: {', '.join(missing)} missing")
    if settings.twilio_account_sid and not TWILIO_USERNAME.fullmatch(settings.twilio_account_sid):
        raise ValueError("TWILIO_ACCOUNT_SID is the Account SID (AC…) or an API key SID (SK…): 34 characters")
    if settings.twilio_verify_service_sid and not SERVICE_SID.fullmatch(settings.twilio_verify_service_sid):
        raise ValueError("TWILIO_VERIFY_SERVICE_SID is the Verify Service's SID: VA followed by 32 hex digits")
    if not re.fullmatch(r"https?://[^/\s]+(/\S*)?", settings.twilio_base_url):
        raise ValueError(f"TWILIO_BASE_URL must be a URL like {TWILIO_BASE_URL}, got {settings.twilio_base_url!r}")


def is_issuer_url(url: str) -> bool:
    """An https URL (http only on a loopback host) with no query or fragment: what OIDC allows as an issuer."""
    parts = urlsplit(url)
    if parts.query or parts.fragment or not parts.hostname or parts.username or parts.password:
        return False
    return parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS)
