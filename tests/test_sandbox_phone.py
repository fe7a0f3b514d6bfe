"""Sandbox mode: each browser sees only the calls of its own session.

The phone panel (whole page and the fragment it polls) and `/_sandbox/calls`
show the code each call speaks; another person's must never be among them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from tests.support import FakeClock

ALICE = ("203.0.113.51", "06 12345671", "+31 6 12345671")
BOB = ("203.0.113.52", "06 12345672", "+31 6 12345672")


def code_for(app: object, recipient: str) -> str:
    """The newest code the sandbox spoke to `recipient` (E.164 without "+")."""
    return next(c["token"] for c in app.state.sandbox.calls() if c["recipient"] == recipient)  # type: ignore[attr-defined]


@pytest.fixture
async def alice_and_bob(client_for: Callable[..., httpx.AsyncClient]) -> AsyncIterator[tuple[httpx.AsyncClient, ...]]:
    """Two browsers from two addresses, each with its own cookie and a call placed."""
    async with client_for(ALICE[0]) as alice, client_for(BOB[0]) as bob:
        for person, (_, typed, _) in ((alice, ALICE), (bob, BOB)):
            assert (await person.post("/verify", data={"country": "NL", "phone": typed})).status_code == 303
        yield alice, bob


async def test_the_phone_panel_shows_each_browser_only_its_own_call(alice_and_bob, app: object) -> None:
    alice, bob = alice_and_bob
    alices, bobs = code_for(app, "31612345671"), code_for(app, "31612345672")
    for person, own, other, (_, _, shown), (_, _, hidden) in (
        (alice, alices, bobs, ALICE, BOB),
        (bob, bobs, alices, BOB, ALICE),
    ):
        panel = (await person.get("/_sandbox/phone", headers={"HX-Request": "true"})).text
        assert own in panel and shown in panel
        assert other not in panel and hidden not in panel


async def test_the_whole_page_shows_each_browser_only_its_own_call(alice_and_bob, app: object) -> None:
    alice, _bob = alice_and_bob
    page = (await alice.get("/")).text
    assert code_for(app, "31612345671") in page
    assert code_for(app, "31612345672") not in page and BOB[2] not in page


async def test_sandbox_calls_lists_only_the_sessions_own_calls(alice_and_bob) -> None:
    alice, bob = alice_and_bob
    assert [call["recipient"] for call in (await alice.get("/_sandbox/calls")).json()] == ["31612345671"]
    assert [call["recipient"] for call in (await bob.get("/_sandbox/calls")).json()] == ["31612345672"]


async def test_a_browser_with_no_verification_sees_no_calls(alice_and_bob, client_for) -> None:
    async with client_for("203.0.113.53") as stranger:
        assert (await stranger.get("/_sandbox/calls")).json() == []
        page = (await stranger.get("/")).text
        assert "No calls yet" in page and ALICE[2] not in page and BOB[2] not in page


async def test_a_forged_session_cookie_sees_no_calls(alice_and_bob, client_for) -> None:
    async with client_for("203.0.113.53", cookies={"voice2fa_session": "forged"}) as stranger:
        assert (await stranger.get("/_sandbox/calls")).json() == []


async def test_calling_again_shows_both_calls_of_the_session(client_for, app: object, clock: FakeClock) -> None:
    async with client_for(ALICE[0], headers={"HX-Request": "true"}) as alice:
        await alice.post("/verify", data={"country": "NL", "phone": ALICE[1]})
        first = code_for(app, "31612345671")
        clock.advance(31)
        assert (await alice.post("/resend")).status_code == 200
        second = code_for(app, "31612345671")
        assert {call["token"] for call in (await alice.get("/_sandbox/calls")).json()} == {first, second}


async def test_a_whole_page_rendered_without_a_lookup_loads_the_panel_itself(client) -> None:
    """A refusal's whole page (no JavaScript) leaves the panel to load its session's calls."""
    response = await client.post("/confirm", data={"code": "123456"})
    assert 'hx-trigger="load, every 2s' in response.text
    assert "Your calls show up here." in response.text


async def test_the_panel_keeps_showing_the_sessions_call_once_it_is_verified(client_for, app: object) -> None:
    async with client_for(ALICE[0], headers={"HX-Request": "true"}) as alice:
        await alice.post("/verify", data={"country": "NL", "phone": ALICE[1]})
        code = code_for(app, "31612345671")
        assert "is verified" in (await alice.post("/confirm", data={"code": code})).text
        panel = (await alice.get("/_sandbox/phone")).text
        assert code in panel and "No calls yet" not in panel
        async with client_for(BOB[0]) as bob:  # and still only to that session
            assert (await bob.get("/_sandbox/calls")).json() == []
