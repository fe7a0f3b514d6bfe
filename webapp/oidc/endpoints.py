"""HTTP for the hand-off: discovery, JWKS, authorization, token and userinfo endpoints.

Only translation happens here: the query or form goes to `authorize` or
`tokens`, and their plain answers become responses.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from webapp.oidc import authorize, tokens
from webapp.oidc.keys import ALGORITHM
from webapp.oidc.page import SESSION_KEY
from webapp.oidc.parameters import SCOPES
from webapp.oidc.provider import issuer_of, served
from webapp.state import app_state, ip_of

MAX_FORM_BYTES = 16 * 1024

AUTHORIZE, TOKEN, USERINFO, JWKS = "/oidc/authorize", "/oidc/token", "/oidc/userinfo", "/oidc/jwks"
CLAIMS = (
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "auth_time",
    "nonce",
    "amr",
    "at_hash",
    "phone_number",
    "phone_number_verified",
)


def metadata(issuer: str) -> dict[str, Any]:
    """The OpenID Provider Metadata (OpenID Connect Discovery 1.0 §3) for `issuer`."""
    return {
        "issuer": issuer,
        "authorization_endpoint": issuer + AUTHORIZE,
        "token_endpoint": issuer + TOKEN,
        "userinfo_endpoint": issuer + USERINFO,
        "jwks_uri": issuer + JWKS,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": [ALGORITHM],
        "scopes_supported": list(SCOPES),
        "claims_supported": list(CLAIMS),
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "authorization_response_iss_parameter_supported": True,
    }


async def discovery(request: Request) -> Response:
    """GET /.well-known/openid-configuration."""
    return JSONResponse(metadata(issuer_of(request)), headers={"Cache-Control": "public, max-age=300"})


async def jwks(request: Request) -> Response:
    """GET the JWK Set: the public keys that verify ID tokens."""
    return JSONResponse(await served(request).keys.jwks(), headers={"Cache-Control": "public, max-age=300"})


async def authorization(request: Request) -> Response:
    """GET the authorization endpoint: an error page, an error redirect, or on to the verification page."""
    result = await authorize.check(
        served(request), request.scope.get("query_string", b""), issuer=issuer_of(request), ip=ip_of(request)
    )
    if isinstance(result, authorize.ErrorPage):
        html = (
            app_state(request)["pages"]
            .env.get_template("oidc_error.html")
            .render(error=result.error, message=result.message, root=request.scope.get("root_path", ""))
        )
        headers = {"Cache-Control": "no-store"}
        if result.retry_after:
            headers["Retry-After"] = str(result.retry_after)
        return HTMLResponse(html, status_code=result.status, headers=headers)
    if isinstance(result, authorize.Redirect):
        return RedirectResponse(result.url, status_code=303, headers={"Cache-Control": "no-store"})
    request.session[SESSION_KEY] = result.request_id
    return RedirectResponse(
        request.scope.get("root_path", "") + "/", status_code=303, headers={"Cache-Control": "no-store"}
    )


async def _form_pairs(request: Request) -> list[tuple[str, str]] | None:
    """The urlencoded body's pairs, every one kept; None if it is not a small urlencoded UTF-8 form."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return None
    try:
        return parse_qsl(body.decode("utf-8"), keep_blank_values=True, errors="strict", max_num_fields=30)
    except (UnicodeDecodeError, ValueError):
        return None


def _json(answer: tokens.Answer) -> Response:
    return JSONResponse(answer.body, status_code=answer.status, headers=answer.headers)


async def token(request: Request) -> Response:
    """POST the token endpoint: a code (and its PKCE verifier) for an ID token and an access token."""
    answer = await tokens.exchange(
        served(request),
        await _form_pairs(request),
        request.headers.get("authorization"),
        issuer=issuer_of(request),
        ip=ip_of(request),
    )
    return _json(answer)


async def userinfo(request: Request) -> Response:
    """GET or POST the userinfo endpoint, with a Bearer access token."""
    return _json(await tokens.userinfo(served(request), request.headers.get("authorization")))


def routes() -> list[BaseRoute]:
    """The hand-off's routes."""
    return [
        Route("/.well-known/openid-configuration", discovery, methods=["GET"]),
        Route(JWKS, jwks, methods=["GET"]),
        Route(AUTHORIZE, authorization, methods=["GET"]),
        Route(TOKEN, token, methods=["POST"]),
        Route(USERINFO, userinfo, methods=["GET", "POST"]),
    ]
