"""The page in real headless Chromium: htmx swaps, the sandbox phone, and no JavaScript at all.

The real app (sandbox mode, a migrated SQLite file, the real clock) is served
by uvicorn on a loopback port in a background thread; Playwright's sync API
drives Debian's Chromium. Screenshots go to /tmp/shots for a human to look at.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tests.browser.support import WAIT_MS, Watched, expect, shot, watch

NUMBER = "06 12345678"
RECIPIENT = "31612345678"


@pytest.fixture
def web(browser: object, live_server: str) -> Iterator[Watched]:
    """A fresh browser context (own cookies) on the live server, with JavaScript."""
    context = browser.new_context(viewport={"width": 1100, "height": 800})
    context.set_default_timeout(WAIT_MS)
    yield watch(context.new_page(), live_server)
    context.close()


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
