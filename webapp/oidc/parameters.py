"""An authorization request's parameters: parsed strictly, then checked into the fields stored.

    parse(query)                         → every parameter's values, or None (not UTF-8, too many)
    validated(params)                    → scope, nonce, code_challenge, login_hint; or raises
                                           the OAuth2Error to send back to the site

`validated` holds the checks after `client_id` and `redirect_uri` (which
`webapp.oidc.authorize.check` makes first): a repeated parameter, request
objects, `response_type=code` with `response_mode=query`, the `openid` scope,
PKCE with S256, the length of `state` and `nonce`, and `prompt=none`.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from authlib.oauth2.rfc6749.errors import InvalidRequestError, InvalidScopeError, UnsupportedResponseTypeError
from authlib.oauth2.rfc7636.challenge import CODE_CHALLENGE_PATTERN
from authlib.oidc.core.errors import LoginRequiredError, RequestNotSupportedError, RequestURINotSupportedError

from webapp.attempts import printable

SCOPES = ("openid", "phone")
#: Longest `state` or `nonce` kept; a URL carries them, so a real one is far shorter.
MAX_VALUE = 2048
MAX_FIELDS = 50


def parse(query: bytes) -> dict[str, list[str]] | None:
    """The query's parameters, every value kept; None if it is not strict UTF-8 or has too many fields."""
    try:
        pairs = parse_qsl(query.decode("utf-8"), keep_blank_values=True, errors="strict", max_num_fields=MAX_FIELDS)
    except (UnicodeDecodeError, ValueError):
        return None
    found: dict[str, list[str]] = {}
    for name, value in pairs:
        found.setdefault(name, []).append(value)
    return found


def validated(params: dict[str, list[str]]) -> dict[str, str | None]:
    """The request's checks after client and redirect URI: its stored fields, or the OAuth2Error to send back."""
    for name, values in params.items():
        if len(values) > 1:
            raise InvalidRequestError(
                f"The parameter {printable(name, 40)!r} is given more than once."
                if _describable(name)
                else "A parameter is given more than once."
            )
    value = {name: values[0] for name, values in params.items()}
    if "request" in value:
        raise RequestNotSupportedError("Request objects are not supported.")
    if "request_uri" in value:
        raise RequestURINotSupportedError("request_uri is not supported.")
    response_type = value.get("response_type")
    if not response_type:
        raise InvalidRequestError("Missing response_type.")
    if response_type != "code":
        raise UnsupportedResponseTypeError(response_type, "Only response_type=code is supported.")
    if value.get("response_mode", "query") != "query":
        raise InvalidRequestError("Only response_mode=query is supported.")
    scopes = value.get("scope", "").split()
    if "openid" not in scopes:
        raise InvalidScopeError("The scope must include openid.")
    challenge = value.get("code_challenge")
    if not challenge:
        raise InvalidRequestError("PKCE is required: send code_challenge with code_challenge_method=S256.")
    if value.get("code_challenge_method") != "S256":
        raise InvalidRequestError("code_challenge_method must be S256.")
    if not CODE_CHALLENGE_PATTERN.match(challenge):
        raise InvalidRequestError("The code_challenge is not a base64url S256 challenge.")
    for name in ("state", "nonce"):
        if len(value.get(name) or "") > MAX_VALUE:
            raise InvalidRequestError(f"The {name} is longer than {MAX_VALUE} characters.")
    prompts = value.get("prompt", "").split()
    if "none" in prompts:
        # Every hand-off needs a call answered: there is never a session to reuse silently.
        if len(prompts) > 1:
            raise InvalidRequestError("prompt=none can't be combined with other prompt values.")
        raise LoginRequiredError("Verifying a number needs the person: prompt=none can't be honoured.")
    hint = value.get("login_hint")
    return {
        "scope": " ".join(scope for scope in SCOPES if scope in scopes),
        "nonce": value.get("nonce") or None,
        "code_challenge": challenge,
        "login_hint": printable(hint, 64) if hint else None,
    }


def _describable(name: str) -> bool:
    """Whether a parameter name can go in an error_description (RFC 6749 allows only some ASCII)."""
    return name.isascii() and name.isprintable() and not set(name) & {'"', "\\"}
