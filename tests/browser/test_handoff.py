"""The hand-off in real headless Chromium, across two origins: the shop, voice2fa's page, and back.

voice2fa (sandbox mode, the test's database) is served by uvicorn at
http://127.0.0.1:<port> (the `live_server` fixture of tests/browser/conftest.py);
the example shop (examples/shop, Authlib's Starlette client configured from
the discovery URL) at http://localhost:<port>, another host, so the browser
treats them as two sites. The code is read from this browser's own
`/_sandbox/calls`. Screenshots go to /tmp/shots/handoff-*.png.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from examples.shop.app import create_shop
from tests.browser.support import WAIT_MS, Watched, expect, shot, watch
from tests.support import free_port, on_own_loop, served_in_thread
from webapp.db import create_engine, create_sessionmaker
from webapp.oidc import clients
from webapp.settings import Settings

TYPED = "06 12345678"
SHOWN = "+31 6 12345678"


@dataclass(frozen=True)
class Shop:
    url: str
    voice2fa: str


async def _register(database_url: str, redirect_uri: str) -> clients.Credentials:
    engine = create_engine(database_url)
    try:
        async with create_sessionmaker(engine)() as session:
            return await clients.add(session, "Example shop", [redirect_uri], datetime.now(UTC))
    finally:
        await engine.dispose()


def register(settings: Settings, redirect_uri: str) -> clients.Credentials:
    """`voice2fa client add` on the test's database, from this sync test (pytest-asyncio has the thread's loop)."""
    return on_own_loop(_register(settings.database_url, redirect_uri))


@pytest.fixture
def shop(settings: Settings, live_server: str) -> Iterator[Shop]:
    """The example shop, registered with voice2fa as a client, served on localhost in a thread."""
    port = free_port()
    url = f"http://localhost:{port}"
    credentials = register(settings, url + "/callback")
    app = create_shop(live_server, credentials.client_id, credentials.client_secret, url)
    with served_in_thread(app, port=port):
        yield Shop(url, live_server)


def sign_up(page: object, shop: Shop, name: str) -> None:
    """At the shop: give the number and sign up; voice2fa's page says for whom, with the number filled in."""
    page.goto(shop.url + "/")
    page.get_by_label("Phone number (optional)").fill(TYPED)
    shot(page, f"handoff-{name}-1-shop")
    page.get_by_role("button", name="Sign up with your phone").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Verify your phone number for Example shop")
    assert page.url == shop.voice2fa + "/"
    expect(page.get_by_role("textbox", name="Phone number", exact=True)).to_have_value(TYPED)
    shot(page, f"handoff-{name}-2-voice2fa")


def answer_the_call(page: object, shop: Shop, name: str) -> None:
    """Ask for the call, read the code this browser's session was called with, type it."""
    page.get_by_role("button", name="Call me", exact=True).click()
    expect(page.get_by_role("textbox", name="Code", exact=True)).to_be_visible()
    calls = page.request.get(shop.voice2fa + "/_sandbox/calls").json()
    assert [call["recipient"] for call in calls] == ["31612345678"]
    expect(page.locator("#calls .spoken").first).to_contain_text(calls[0]["token"])
    shot(page, f"handoff-{name}-3-code")
    page.get_by_role("textbox", name="Code", exact=True).fill(calls[0]["token"])
    page.get_by_role("button", name="Check").click()


def test_with_javascript_the_shop_gets_the_verified_number(browser: object, shop: Shop) -> None:
    context = browser.new_context(viewport={"width": 1100, "height": 800})
    context.set_default_timeout(WAIT_MS)
    try:
        page = context.new_page()
        watched: Watched = watch(page, shop.voice2fa)
        sign_up(page, shop, "js")
        answer_the_call(page, shop, "js")
        expect(page.locator(".welcome")).to_have_text(f"Welcome, your verified number is {SHOWN}.")
        assert page.url == shop.url + "/"
        shot(page, "handoff-js-4-welcome")
        assert watched.errors == []  # no CSP violation, no failed request on either side
    finally:
        context.close()


def test_without_javascript_the_shop_gets_the_verified_number(browser: object, shop: Shop) -> None:
    """Every step a plain form post; the code's answer is a 303 that the page's form-action lets go to the shop."""
    context = browser.new_context(java_script_enabled=False, viewport={"width": 1100, "height": 800})
    context.set_default_timeout(WAIT_MS)
    try:
        page = context.new_page()
        sign_up(page, shop, "nojs")
        answer_the_call(page, shop, "nojs")
        expect(page.locator(".welcome")).to_have_text(f"Welcome, your verified number is {SHOWN}.")
        assert page.url == shop.url + "/"
        shot(page, "handoff-nojs-4-welcome")
    finally:
        context.close()


@pytest.mark.parametrize("javascript", [True, False], ids=["js", "nojs"])
def test_cancel_and_go_back_tells_the_shop(browser: object, shop: Shop, javascript: bool) -> None:
    context = browser.new_context(java_script_enabled=javascript, viewport={"width": 1100, "height": 800})
    context.set_default_timeout(WAIT_MS)
    try:
        page = context.new_page()
        sign_up(page, shop, "cancel")
        page.get_by_role("button", name="Cancel and go back").click()
        expect(page.locator(".error")).to_have_text("You cancelled verifying your number, so no account was made.")
        assert page.url.startswith(shop.url + "/callback?")
        shot(page, f"handoff-cancel-{'js' if javascript else 'nojs'}")
    finally:
        context.close()
