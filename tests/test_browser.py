"""The page in real headless Chromium: htmx swaps, the sandbox phone, and no JavaScript at all.

The real app (sandbox mode, a migrated SQLite file, the real clock) is served
by uvicorn on a loopback port in a background thread; Playwright's sync API
drives Debian's Chromium. Screenshots go to /tmp/shots for a human to look at.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import uvicorn

from tests.conftest import require
from webapp.app import create_app
from webapp.settings import Settings

pytestmark = pytest.mark.browser

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # the browser fixture says so, through require()
    expect = sync_playwright = None  # type: ignore[assignment]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]
SHOTS = Path("/tmp/shots")
NUMBER = "06 12345678"
RECIPIENT = "31612345678"
WAIT_MS = 5_000


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def live_server(settings: Settings) -> Iterator[str]:
    """The real app served by uvicorn from a background thread; yields its base URL."""
    port = free_port()
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn-browser-tests", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            thread.join(5)
            pytest.fail(f"uvicorn did not start on 127.0.0.1:{port}")
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)
    assert not thread.is_alive(), "uvicorn did not stop within 10 s"


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Headless Debian Chromium for this module (no browser downloads on these machines)."""
    require(sync_playwright is not None, "playwright for Python is not installed (pip install -e '.[test]')")
    require(CHROMIUM.exists(), f"{CHROMIUM} is not installed (apt-get install chromium)")
    try:
        manager = sync_playwright().start()
    except Exception as exc:  # noqa: BLE001 - any failure means "no browser here"
        require(False, f"Playwright could not start: {exc}")
    try:
        launched = manager.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
    except Exception as exc:  # noqa: BLE001
        manager.stop()
        require(False, f"Playwright could not launch {CHROMIUM}: {exc}")
    yield launched
    launched.close()
    manager.stop()


@dataclass
class Watched:
    """A page and what it did: console errors, page errors, main-frame navigations."""

    page: object
    base_url: str
    errors: list[str] = field(default_factory=list)
    navigations: list[str] = field(default_factory=list)

    def on_console(self, message: object) -> None:
        if message.type != "error":
            return
        url = message.location.get("url", "")
        # The page links no icon, so Chromium's own /favicon.ico probe 404s: not the page's doing.
        if url.endswith("/favicon.ico"):
            return
        self.errors.append(f"{message.text} ({url})")

    def open(self) -> None:
        """Load the page once and mark the window, so a reload would show."""
        self.page.goto(self.base_url + "/")
        self.page.evaluate("window.__marker = 1")

    def assert_not_reloaded(self) -> None:
        assert self.page.evaluate("window.__marker") == 1, "the page reloaded"
        assert self.navigations == [self.base_url + "/"], f"main frame navigated: {self.navigations}"

    def latest_call(self) -> dict:
        """The newest call the sandbox placed (GET /_sandbox/calls, newest first)."""
        response = self.page.request.get(self.base_url + "/_sandbox/calls")
        assert response.ok, response.status
        calls = response.json()
        assert calls, "the sandbox placed no call"
        return calls[0]


def watch(page: object, base_url: str) -> Watched:
    watched = Watched(page, base_url)
    page.on("console", watched.on_console)
    page.on("pageerror", lambda exc: watched.errors.append(f"pageerror: {exc}"))
    page.on("framenavigated", lambda frame: frame == page.main_frame and watched.navigations.append(frame.url))
    # CSP violations also reach the console as errors; this catches ones that do not.
    page.add_init_script(
        "document.addEventListener('securitypolicyviolation', function (e) {"
        " console.error('CSP violation: ' + e.violatedDirective + ' ' + e.blockedURI); });"
    )
    return watched


@pytest.fixture
def web(browser: object, live_server: str) -> Iterator[Watched]:
    """A fresh browser context (own cookies) on the live server, with JavaScript."""
    context = browser.new_context(viewport={"width": 1100, "height": 800})
    context.set_default_timeout(WAIT_MS)
    yield watch(context.new_page(), live_server)
    context.close()


def shot(page: object, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def call_me(page: object) -> None:
    """Type the number (NL preselected) and ask for the call."""
    expect(page.locator("#country")).to_have_value("NL")
    page.get_by_role("textbox", name="Phone number", exact=True).fill(NUMBER)
    page.get_by_role("button", name="Call me", exact=True).click()


def test_htmx_happy_path_verifies_without_reload(web: Watched) -> None:
    page = web.page
    web.open()
    expect(page.get_by_role("button", name="Call me", exact=True)).to_be_visible()
    shot(page, "1-phone-form")

    call_me(page)
    expect(page.get_by_role("textbox", name="Code", exact=True)).to_be_visible()
    expect(page.get_by_role("status")).to_contain_text("Calling +31 6 12345678 now")
    call = web.latest_call()
    assert call["recipient"] == RECIPIENT
    expect(page.locator("#calls .spoken").first).to_contain_text(call["token"])
    shot(page, "2-code-form-with-call")

    page.get_by_role("textbox", name="Code", exact=True).fill(call["token"])
    page.get_by_role("button", name="Check").click()

    expect(page.locator("#flow .result")).to_contain_text("+31 6 12345678 is confirmed")
    expect(page.get_by_role("status")).to_contain_text("+31 6 12345678 is verified.")
    expect(page.get_by_role("textbox", name="Code", exact=True)).to_have_count(0)
    shot(page, "4-success")
    web.assert_not_reloaded()
    assert web.errors == []


def test_wrong_code_shows_error_and_keeps_code_form(web: Watched) -> None:
    page = web.page
    web.open()
    call_me(page)
    expect(page.get_by_role("textbox", name="Code", exact=True)).to_be_visible()
    token = web.latest_call()["token"]
    wrong = "000000" if token != "000000" else "111111"

    page.get_by_role("textbox", name="Code", exact=True).fill(wrong)
    page.get_by_role("button", name="Check").click()

    expect(page.get_by_role("status")).to_have_text("That code is not right. 2 attempts left.")
    expect(page.get_by_role("textbox", name="Code", exact=True)).to_be_visible()
    expect(page.locator("#flow .hint")).to_have_count(0)  # the status already says how many are left
    expect(page.get_by_role("textbox", name="Code", exact=True)).to_have_attribute("aria-invalid", "true")
    shot(page, "3-wrong-code")
    web.assert_not_reloaded()
    # Chromium reports the 422 itself as a failed resource load; anything else is a bug.
    unexpected = [e for e in web.errors if not ("status of 422" in e and "/confirm)" in e)]
    assert unexpected == []


def test_without_javascript_forms_post_and_pages_render(browser: object, live_server: str) -> None:
    context = browser.new_context(java_script_enabled=False)
    context.set_default_timeout(WAIT_MS)
    try:
        page = context.new_page()
        web = watch(page, live_server)
        page.goto(live_server + "/")
        call_me(page)
        expect(page.get_by_role("textbox", name="Code", exact=True)).to_be_visible()
        expect(page.get_by_role("status")).to_contain_text("Calling +31 6 12345678 now")
        call = web.latest_call()
        # Without polling, the phone panel is current as of this full page.
        expect(page.locator("#calls .spoken").first).to_contain_text(call["token"])

        page.get_by_role("textbox", name="Code", exact=True).fill(call["token"])
        page.get_by_role("button", name="Check").click()

        expect(page.locator("#flow .result")).to_contain_text("+31 6 12345678 is confirmed")
        assert page.url == live_server + "/"
        assert len(web.navigations) >= 3  # the first load, and a full page after each post
        shot(page, "5-nojs-success")
    finally:
        context.close()


def test_phone_panel_shows_the_call_by_itself(web: Watched) -> None:
    page = web.page
    web.open()
    expect(page.locator("#calls")).to_contain_text("No calls yet")

    call_me(page)
    expect(page.get_by_role("textbox", name="Code", exact=True)).to_be_visible()
    token = web.latest_call()["token"]

    spoken = page.locator("#calls .call .spoken").first
    expect(spoken).to_have_text(f"Your account security code is {token}.")
    expect(page.locator("#calls .call .to").first).to_have_text("+31 6 12345678")
    web.assert_not_reloaded()
    assert web.errors == []


def test_buttons_are_disabled_in_flight_and_during_cooldown(web: Watched) -> None:
    page = web.page
    call_button = page.get_by_role("button", name="Call me", exact=True)
    disabled_in_flight: list[bool] = []

    def while_in_flight(route: object) -> None:
        # The request is paused here, so this is the button's state while it is in flight.
        disabled_in_flight.append(call_button.is_disabled())
        route.continue_()

    page.route("**/verify", while_in_flight)
    web.open()

    call_me(page)

    again = page.get_by_role("button", name=re.compile(r"^Call me again"))
    expect(again).to_be_visible()
    expect(again).to_be_disabled()
    expect(again).to_have_text(re.compile(r"^Call me again \(\d+ s\)$"))
    assert disabled_in_flight == [True]
    web.assert_not_reloaded()
    assert web.errors == []


def test_refusal_status_is_styled_as_an_error(web: Watched) -> None:
    page = web.page
    web.open()
    call_me(page)
    code = page.get_by_role("textbox", name="Code", exact=True)
    expect(code).to_be_visible()
    code.fill("000000" if web.latest_call()["token"] != "000000" else "111111")
    page.get_by_role("button", name="Check").click()

    status = page.get_by_role("status")
    expect(status).to_contain_text("That code is not right")
    expect(status.locator("p.message")).to_have_class(re.compile(r"\berror\b"), timeout=1_000)
