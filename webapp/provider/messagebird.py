"""The MessageBird Verify REST client, over one injected `httpx.AsyncClient`.

Maps MessageBird's answers onto `webapp.errors`: the errors envelope
`{"errors": [{"code", "description", "parameter"}]}` becomes a typed
`ProviderRejected`; a refused connection, a 429, and a 5xx in that envelope
(answers that prove nothing was done) become `ProviderRefused`; timeouts,
other 5xx and anything that is not the JSON we expect become
`ProviderUnavailable`. A create is never retried: a retry could place a
second call.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import anyio
import httpx

from webapp.errors import (
    InvalidParameter,
    InvalidToken,
    NotFound,
    ProviderRefused,
    ProviderRejected,
    ProviderUnauthorized,
    ProviderUnavailable,
    TokenExpired,
    TokenProcessed,
)
from webapp.provider import CALL, CallOptions, ProviderVerification, parse_datetime

log = logging.getLogger(__name__)

# The descriptions MessageBird answers for a token check; the error code (10)
# is the same for all three, so the text is what tells them apart.
_TOKEN_ERRORS: dict[str, type[ProviderRejected]] = {
    "the token is invalid.": InvalidToken,
    "the token has expired.": TokenExpired,
    "the token has already been processed.": TokenProcessed,
}


class MessageBird:
    """Verify API calls: `create`, `check`, `cancel`."""

    def __init__(self, client: httpx.AsyncClient, access_key: str, base_url: str, *, deadline: float = 15.0) -> None:
        if not all(" " < ch < "\x7f" for ch in access_key):
            raise ValueError("the MessageBird access key must be printable ASCII without spaces")
        self._client = client
        # Stripped so an empty key still reaches the provider and comes back a
        # 401 (ProviderUnauthorized, logged): "AccessKey " with its trailing
        # space is an illegal header value that h11 refuses before sending.
        self._headers = {"Authorization": f"AccessKey {access_key}".strip(), "Accept": "application/json"}
        self._base_url = base_url.rstrip("/")
        # httpx's timeouts are per phase (and absent over ASGITransport); this
        # bounds a whole request, so a hanging provider never hangs a person.
        self._deadline = deadline

    async def create(self, recipient: str, channel: str, options: CallOptions) -> ProviderVerification:
        """POST /verify: place a call (`CALL` is type "tts") that reads a fresh code to `recipient` (E.164)."""
        body: dict[str, Any] = {
            "recipient": recipient.lstrip("+"),
            # MessageBird's own types (tts, sms, flash, email) pass through unchanged.
            "type": "tts" if channel == CALL else channel,
            "template": options.template,
            "language": options.language,
            "voice": options.voice,
            "tokenLength": options.token_length,
            "timeout": options.timeout,
            "maxAttempts": options.max_attempts,
        }
        if options.originator:
            body["originator"] = options.originator
        data = await self._request("POST", "/verify", json=body)
        return _verification(data)

    async def check(self, ref: str, code: str) -> ProviderVerification:
        """GET /verify/{id}?token=: check a code; the answer's status says if it verified."""
        data = await self._request("GET", f"/verify/{_path_id(ref)}", params={"token": code})
        return _verification(data)

    async def fetch(self, ref: str) -> ProviderVerification:
        """GET /verify/{id}: the verification as it stands."""
        data = await self._request("GET", f"/verify/{_path_id(ref)}")
        return _verification(data)

    async def cancel(self, ref: str) -> None:
        """DELETE /verify/{id}."""
        await self._request("DELETE", f"/verify/{_path_id(ref)}")

    async def _request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            with anyio.fail_after(self._deadline):
                response = await self._client.request(method, self._base_url + path, headers=self._headers, **kwargs)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            # No connection, so no request: nothing was placed.
            raise ProviderRefused(f"{method} {path}: {type(exc).__name__}: {exc}") from exc
        except (httpx.HTTPError, TimeoutError) as exc:
            raise ProviderUnavailable(f"{method} {path}: {type(exc).__name__}: {exc}") from exc
        if response.status_code == 204:
            return {}
        if response.status_code in (401, 403):
            # 403: the key is known but may not do this (or the account is suspended).
            log.error(
                "MessageBird refused the access key (%s) on %s %s: check MESSAGEBIRD_API_KEY. "
                "No calls can be placed until it is fixed.",
                response.status_code,
                method,
                path,
            )
            raise ProviderUnauthorized(f"MessageBird refused the access key (HTTP {response.status_code})")
        if response.status_code == 429:
            # The provider's rate limit: temporary, like an outage, and the request was not carried out.
            raise ProviderRefused(f"{method} {path}: HTTP 429")
        if response.status_code >= 500:
            # With MessageBird's own errors envelope it is MessageBird saying it did nothing; anything
            # else (a gateway's page, an empty body) may come from in front of a call already placed.
            if _errors_envelope(response):
                raise ProviderRefused(f"{method} {path}: HTTP {response.status_code} with MessageBird's error body")
            raise ProviderUnavailable(f"{method} {path}: HTTP {response.status_code}")
        try:
            data = response.json()
        except ValueError as exc:
            raise ProviderUnavailable(
                f"{method} {path}: HTTP {response.status_code} with a body that is not JSON"
            ) from exc
        if not isinstance(data, dict):
            raise ProviderUnavailable(f"{method} {path}: HTTP {response.status_code} with unexpected JSON")
        if 200 <= response.status_code < 300:
            return data
        if 400 <= response.status_code < 500:
            raise _rejected(response.status_code, data)
        raise ProviderUnavailable(f"{method} {path}: unexpected HTTP {response.status_code}")


def _errors_envelope(response: httpx.Response) -> bool:
    """The body is MessageBird's `{"errors": [{"code": …, …}]}`."""
    try:
        data = response.json()
    except ValueError:
        return False
    errors = data.get("errors") if isinstance(data, dict) else None
    return isinstance(errors, list) and bool(errors) and isinstance(errors[0], dict) and "code" in errors[0]


def _path_id(ref: str) -> str:
    # A provider id is hex; refuse anything that could change the path.
    if not _ID.fullmatch(ref):
        raise NotFound("not a verification id", status_code=404)
    return ref


_ID = re.compile(r"[A-Za-z0-9]{1,64}")


def _rejected(status_code: int, data: dict[str, Any]) -> ProviderRejected:
    errors = data.get("errors")
    first = errors[0] if isinstance(errors, list) and errors and isinstance(errors[0], dict) else {}
    description = str(first.get("description") or f"HTTP {status_code}")
    code = first.get("code") if isinstance(first.get("code"), int) else None
    parameter = first.get("parameter") if isinstance(first.get("parameter"), str) else None
    if status_code == 404 or code == 20:
        kind: type[ProviderRejected] = NotFound
    else:
        kind = _TOKEN_ERRORS.get(description.strip().lower(), InvalidParameter)
    return kind(description, status_code=status_code, code=code, parameter=parameter)


def _verification(data: dict[str, Any]) -> ProviderVerification:
    try:
        ref = data["id"]
        status = data["status"]
        if not isinstance(ref, str) or not isinstance(status, str):
            raise TypeError("id and status must be strings")
        return ProviderVerification(
            id=ref,
            recipient=str(data.get("recipient", "")),
            status=status,
            created=parse_datetime(data.get("createdDatetime")),
            valid_until=parse_datetime(data.get("validUntilDatetime")),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ProviderUnavailable(f"unexpected verify object: {exc}") from exc
