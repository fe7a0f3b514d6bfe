"""Fixtures for the browser tests: the app served by uvicorn, and Debian's Chromium through Playwright.

Every test in this folder is marked `browser` (`pytest -m "not browser"`
leaves them out). Without Playwright or Chromium they skip with the reason,
or fail under VOICE2FA_REQUIRE_SERVICES=1 (tests/support.py's `require`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser.support import CHROMIUM, CHROMIUM_ARGS
from tests.support import require, served_in_thread
from webapp.app import create_app
from webapp.settings import Settings

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # the browser fixture says so, through require()
    sync_playwright = None  # type: ignore[assignment]

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark this folder's tests `browser` (pytest hands every conftest all the items)."""
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.browser)


@pytest.fixture
def live_server(settings: Settings) -> Iterator[str]:
    """The real app served by uvicorn from a background thread; yields its base URL."""
    with served_in_thread(create_app(settings), lifespan="on") as url:
        yield url


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
