"""Example shop: a sign-up that hands the phone number to voice2fa over OpenID Connect.

Authlib's Starlette client does the protocol, configured from voice2fa's
discovery document: PKCE (S256), state and nonce, the code exchange, and the
ID token checked against voice2fa's JWKS. The shop adds the RFC 9207 check
of `iss` on the callback, which Authlib leaves to the application.

    SHOP_CLIENT_ID=… SHOP_CLIENT_SECRET=… uvicorn --factory examples.shop.app:from_env --port 8002
"""

from __future__ import annotations

import os
import secrets
import warnings

import httpx
import jinja2
import phonenumbers
from authlib.deprecate import AuthlibDeprecationWarning
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

with warnings.catch_warnings():
    # Authlib 1.9 would rather run its httpx client on httpx2; it works on httpx, which voice2fa uses too.
    warnings.simplefilter("ignore", AuthlibDeprecationWarning)
    from authlib.integrations.starlette_client import OAuth, OAuthError

PAGE = jinja2.Environment(autoescape=True).from_string("""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Example shop</title>
<link rel="stylesheet" href="/shop.css"></head>
<body><main>
<h1>Example shop</h1>
{% if error %}<p class="error">{{ error }}</p>{% endif %}
{% if number %}
  <p class="welcome">Welcome, your verified number is <strong>{{ number }}</strong>.</p>
  <form method="post" action="/logout"><button>Sign out</button></form>
{% else %}
  <p>Create your account: we check your phone number with a call from voice2fa.</p>
  <form method="get" action="/signup">
    <label for="phone">Phone number (optional)</label> <input id="phone" name="phone" type="tel">
    <button>Sign up with your phone</button>
  </form>
{% endif %}
</main></body></html>""")
CSS = (
    "body{font-family:system-ui,sans-serif;background:#fbf7f0;color:#2b2118}main{max-width:32rem;margin:3rem auto}"
    "button{font:inherit;padding:.5rem 1rem;background:#8a4b16;color:#fff;border:0;border-radius:6px}"
    ".welcome{font-size:1.2rem}.error{color:#a11}input{font:inherit;padding:.4rem}"
)
CANCELLED = "You cancelled verifying your number, so no account was made."


def create_shop(
    voice2fa_url: str, client_id: str, client_secret: str, shop_url: str, secret_key: str | None = None
) -> Starlette:
    """The shop, signing up through voice2fa at `voice2fa_url` as the client `client_id`; it runs at `shop_url`."""
    oauth = OAuth()
    oauth.register(
        "voice2fa",
        client_id=client_id,
        client_secret=client_secret,
        server_metadata_url=voice2fa_url.rstrip("/") + "/.well-known/openid-configuration",
        client_kwargs={"scope": "openid phone", "code_challenge_method": "S256"},
    )
    callback = shop_url.rstrip("/") + "/callback"

    def page(request: Request, error: str = "", status_code: int = 200) -> HTMLResponse:
        return HTMLResponse(PAGE.render(number=request.session.get("number"), error=error), status_code=status_code)

    async def home(request: Request) -> Response:
        return page(request)

    async def signup(request: Request) -> Response:
        phone = request.query_params.get("phone", "").strip()
        hint = {"login_hint": phone} if phone else {}  # voice2fa fills the number in
        try:
            return await oauth.voice2fa.authorize_redirect(request, callback, **hint)
        except httpx.HTTPError:  # its discovery document did not come
            return page(request, "voice2fa does not answer just now. Please try again in a minute.", 503)

    async def back(request: Request) -> Response:
        metadata = await oauth.voice2fa.load_server_metadata()
        if request.query_params.get("iss") != metadata["issuer"]:  # RFC 9207: the answer is from our provider
            return page(request, "That answer did not come from voice2fa.", 400)
        try:
            token = await oauth.voice2fa.authorize_access_token(request)
        except OAuthError as error:
            return page(request, CANCELLED if error.error == "access_denied" else f"Sign-up failed: {error.error}", 400)
        claims = token["userinfo"]  # the ID token's claims, signature and nonce checked by Authlib
        if not claims.get("phone_number_verified"):
            return page(request, "voice2fa did not verify a number.", 400)
        number = phonenumbers.parse(claims["phone_number"])
        request.session["number"] = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
        return RedirectResponse("/", status_code=303)

    async def logout(request: Request) -> Response:
        request.session.clear()
        return RedirectResponse("/", status_code=303)

    async def css(request: Request) -> Response:
        return Response(CSS, media_type="text/css")

    return Starlette(
        routes=[
            Route("/", home),
            Route("/signup", signup),
            Route("/callback", back),
            Route("/logout", logout, methods=["POST"]),
            Route("/shop.css", css),
        ],
        # Its own cookie name: a browser sends a host's cookies to every port of it.
        middleware=[
            Middleware(
                SessionMiddleware,
                secret_key=secret_key or secrets.token_urlsafe(32),
                session_cookie="shop_session",
                same_site="lax",
            )
        ],
    )


def from_env() -> Starlette:
    """The shop configured from SHOP_CLIENT_ID, SHOP_CLIENT_SECRET, VOICE2FA_URL and SHOP_URL."""
    return create_shop(
        os.environ.get("VOICE2FA_URL", "http://127.0.0.1:8000"),
        os.environ["SHOP_CLIENT_ID"],
        os.environ["SHOP_CLIENT_SECRET"],
        os.environ.get("SHOP_URL", "http://localhost:8002"),
    )
