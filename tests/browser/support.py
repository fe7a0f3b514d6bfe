"""What the browser tests share: Debian's Chromium, where screenshots go, a watched page.

The `browser` and `live_server` fixtures are in conftest.py; helpers the other
test folders share too are in tests/support.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

try:
    from playwright.sync_api import expect
except ImportError:  # the browser fixture says so, through require()
    expect = None  # type: ignore[assignment]

__all__ = ["CHROMIUM", "CHROMIUM_ARGS", "SHOTS", "WAIT_MS", "Watched", "expect", "shot", "watch"]

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
WAIT_MS = 5_000


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


def shot(page: object, name: str, **options: object) -> None:
    """A full-page screenshot of `page` as SHOTS/<name>.png, for a human to look at."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True, **options)
