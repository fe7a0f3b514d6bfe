"""The Twilio Verify v2 client, over one injected `httpx.AsyncClient`.

It speaks `webapp.provider.Provider` in the interface's words: Twilio's
statuses become "sent" / "verified" / "deleted" / "failed" / "expired", and a
check that Twilio answers `pending` (the code was wrong) raises `InvalidToken`.
Twilio's error body `{"code", "message", "more_info", "status"}` becomes:

    401, 20003, 403          ProviderUnauthorized (wrong credentials; account closed)
    404, 20404               NotFound (Twilio forgets a verification once it is
                             approved or expired)
    60200                    InvalidParameter, `parameter` read from the message
                             ("Invalid parameter: To" is the "recipient")
    60202                    AttemptsExhausted (every check used)
    60203, 60212             RecipientLimited (too many sends to that number)
    any other 429            ProviderRefused (the account's own request rate)
    any other 4xx            InvalidParameter
    5xx with Twilio's body   ProviderRefused (Twilio says it did nothing)
    a refused connection     ProviderRefused
    other 5xx, a timeout, a cut-off answer, a body that is not JSON: ProviderUnavailable

`ProviderRefused` proves that no call was placed, so failover may try the next
provider; `ProviderUnavailable` does not (the call may be ringing).

How the call sounds, how long its code lives, its length and how many checks
it allows are settings of the Verify Service, not of a request: of the call
options only the language is sent (as `Locale`). A create is never retried.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

import anyio
import httpx

from webapp.errors import (
    AttemptsExhausted,
    InvalidParameter,
    InvalidToken,
    NotFound,
    ProviderError,
    ProviderRefused,
    ProviderUnauthorized,
    ProviderUnavailable,
    RecipientLimited,
)
from webapp.provider import CALL, CallOptions, ProviderVerification, parse_datetime

if TYPE_CHECKING:
    from webapp.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://verify.twilio.com"

SERVICE_SID = re.compile(r"VA[0-9a-fA-F]{32}")
VERIFICATION_SID = re.compile(r"VE[0-9a-fA-F]{32}")

#: The interface's channels and Twilio's names for them.
CHANNELS = {CALL: "call", "sms": "sms"}

#: Twilio's statuses in the interface's words; any other passes through as it is.
STATUSES = {
    "pending": "sent",
    "approved": "verified",
    "canceled": "deleted",
    "deleted": "deleted",
    "max_attempts_reached": "failed",
    "failed": "failed",
    "expired": "expired",
}

#: The language tags Twilio Verify documents ("Verify supported languages"). An
#: unlisted override is answered 404, so anything else is left to Twilio, which
#: then picks the language from the number's country code.
LOCALES = frozenset(
    "af ar ca zh zh-CN zh-HK hr cs da nl en en-GB et fi fr de el he hi hu id it ja kn ko "
    "lt ms mr nb pl pt pt-BR ro ru sk es sv tl te th tr".split()
)

#: Twilio's names of the parameters in the interface's words.
PARAMETERS = {"To": "recipient", "Code": "code", "VerificationSid": "ref"}

_INVALID_PARAMETER = re.compile(r"Invalid parameter\W*(\w+)", re.IGNORECASE)


def twilio_locale(language: str) -> str | None:
    """`language` (e.g. "en-gb") as a Twilio Locale ("en-GB"), or None to let Twilio choose."""
    primary, _, region = language.strip().replace("_", "-").partition("-")
    candidates = [f"{primary.lower()}-{region.upper()}"] if region else []
    candidates.append(primary.lower())
    return next((tag for tag in candidates if tag in LOCALES), None)


class Twilio:
    """Verify v2 calls on one Verify Service: `create`, `check`, `fetch`, `cancel`."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        username: str,
        secret: str,
        service_sid: str,
        base_url: str = DEFAULT_BASE_URL,
        *,
        deadline: float = 15.0,
    ) -> None:
        if not SERVICE_SID.fullmatch(service_sid):
            raise ValueError("the Verify Service SID is VA followed by 32 hex digits")
        self._client = client
        # The Account SID and its auth token, or an API key SID (SK…) and its secret.
        self._auth = httpx.BasicAuth(username, secret)
        self._headers = {"Accept": "application/json"}
        self._service = f"{base_url.rstrip('/')}/v2/Services/{service_sid}"
        # httpx's timeouts are per phase (and absent over ASGITransport); this
        # bounds a whole request, so a hanging provider never hangs a person.
        self._deadline = deadline

    @classmethod
    def from_settings(cls, client: httpx.AsyncClient, settings: Settings) -> Twilio:
        """The client for the TWILIO_* settings; ValueError if they are incomplete."""
        sid, token, service = (
            settings.twilio_account_sid,
            settings.twilio_auth_token,
            settings.twilio_verify_service_sid,
        )
        if not (sid and token and service):
            raise ValueError("Twilio needs TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and TWILIO_VERIFY_SERVICE_SID")
        return cls(client, sid, str(token), service, settings.twilio_base_url, deadline=settings.provider_deadline)

    async def create(self, recipient: str, channel: str, options: CallOptions) -> ProviderVerification:
        """POST /Verifications: place a call (`Channel=call`) that reads a code to `recipient` (E.164)."""
        if channel not in CHANNELS:
            raise ValueError(f"Twilio Verify has no channel {channel!r} here; use one of {sorted(CHANNELS)}")
        form = {"To": recipient, "Channel": CHANNELS[channel]}
        locale = twilio_locale(options.language)
        if locale:
            form["Locale"] = locale
        return _verification(await self._request("POST", "/Verifications", data=form))

    async def check(self, ref: str, code: str) -> ProviderVerification:
        """POST /VerificationCheck; "verified" only when Twilio answers `approved`."""
        form = {"VerificationSid": _sid(ref), "Code": code}
        checked = _verification(await self._request("POST", "/VerificationCheck", data=form))
        if checked.status == "sent":
            # Twilio answers a wrong code 200 with the verification still pending.
            raise InvalidToken("The code is not right.", status_code=200)
        return checked

    async def fetch(self, ref: str) -> ProviderVerification:
        """GET /Verifications/{sid}: the verification as it stands."""
        return _verification(await self._request("GET", f"/Verifications/{_sid(ref)}"))

    async def cancel(self, ref: str) -> None:
        """POST /Verifications/{sid} with `Status=canceled`."""
        await self._request("POST", f"/Verifications/{_sid(ref)}", data={"Status": "canceled"})

    async def _request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            with anyio.fail_after(self._deadline):
                response = await self._client.request(
                    method, self._service + path, auth=self._auth, headers=self._headers, **kwargs
                )
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            # No connection, so no request: nothing was placed.
            raise ProviderRefused(f"{method} {path}: {type(exc).__name__}: {exc}") from exc
        except (httpx.HTTPError, TimeoutError) as exc:
            raise ProviderUnavailable(f"{method} {path}: {type(exc).__name__}: {exc}") from exc
        status = response.status_code
        if status in (401, 403):
            log.error(
                "Twilio refused the credentials (%s) on %s %s: check TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN, "
                "and that the account is active. No calls can be placed until it is fixed.",
                status,
                method,
                path,
            )
            raise ProviderUnauthorized(f"Twilio refused the credentials (HTTP {status})")
        try:
            data = response.json()
        except ValueError as exc:
            if status == 429:
                raise ProviderRefused(f"{method} {path}: HTTP 429") from exc
            raise ProviderUnavailable(f"{method} {path}: HTTP {status} with a body that is not JSON") from exc
        if status >= 500:
            # With Twilio's own error body it is Twilio saying it did nothing; anything else (a
            # gateway's page) may come from in front of a call already placed.
            if isinstance(data, dict) and isinstance(data.get("code"), int) and "message" in data:
                raise ProviderRefused(f"{method} {path}: HTTP {status} (Twilio {data['code']}): {data['message']}")
            raise ProviderUnavailable(f"{method} {path}: HTTP {status}")
        if not isinstance(data, dict):
            raise ProviderUnavailable(f"{method} {path}: HTTP {status} with unexpected JSON")
        if 200 <= status < 300:
            return data
        if 400 <= status < 500:
            raise _rejected(method, path, status, data)
        raise ProviderUnavailable(f"{method} {path}: unexpected HTTP {status}")


def _sid(ref: str) -> str:
    # A verification SID is VE and 32 hex digits; refuse anything that could change the path.
    if not VERIFICATION_SID.fullmatch(ref):
        raise NotFound("not a verification SID", status_code=404)
    return ref


def _rejected(method: str, path: str, status: int, data: dict[str, Any]) -> ProviderError:
    code = data.get("code") if isinstance(data.get("code"), int) else None
    message = str(data.get("message") or f"HTTP {status}")
    if code == 20003:
        return ProviderUnauthorized(message)
    if status == 404 or code == 20404:
        if path == "/Verifications":
            # Creating answers 404 only for a Service that is not there (or a Locale Twilio lacks).
            log.error("Twilio answered 404 to a create: check TWILIO_VERIFY_SERVICE_SID (%s)", message)
        return NotFound(message, status_code=status, code=code)
    if code == 60200:
        found = _INVALID_PARAMETER.search(message)
        parameter = PARAMETERS.get(found.group(1), found.group(1)) if found else None
        return InvalidParameter(message, status_code=status, code=code, parameter=parameter)
    if code == 60202:
        return AttemptsExhausted(message, status_code=status, code=code)
    if code in (60203, 60212):
        return RecipientLimited(message, status_code=status, code=code)
    if status == 429:
        return ProviderRefused(f"{method} {path}: HTTP 429 (Twilio {code}): {message}")
    return InvalidParameter(message, status_code=status, code=code)


def _verification(data: dict[str, Any]) -> ProviderVerification:
    try:
        ref = data["sid"]
        status = data["status"]
        if not isinstance(ref, str) or not isinstance(status, str):
            raise TypeError("sid and status must be strings")
        return ProviderVerification(
            id=ref,
            recipient=str(data.get("to") or ""),
            status=STATUSES.get(status, status),
            created=parse_datetime(data.get("date_created")),
            valid_until=None,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ProviderUnavailable(f"unexpected verification object: {exc}") from exc
