"""The operators' pages never act for a stranger: no markup from input, no POST without the session's form token.

The hostile test of issue 7 made a logged-in operator's browser deny numbers
by opening one link: a filter's text came back as HTML, and htmx ran the
`hx-post` it held. Here, over HTTP on SQLite and PostgreSQL: input is text in
every answer, an action needs the form token of a page the session was
shown, and `?done=` says only what the app wrote. tests/browser/test_admin.py
opens the issue's links in Chromium.
"""

from __future__ import annotations

from urllib.parse import quote

import httpx
import pytest
from sqlalchemy import select

from tests.support import OPERATOR, form_token, post_action, text_of
from webapp import csrf
from webapp.models import AdminAction, DenyEntry

#: Markup that would act if it were parsed as HTML.
HOSTILE = '<b id="injected" hx-post="deny" hx-trigger="load">'
MARKER = "<b id="


async def nothing_recorded(db) -> None:
    """No deny entry and no operators' action in the database."""
    async with db() as session:
        assert (await session.scalars(select(DenyEntry))).all() == []
        assert (await session.scalars(select(AdminAction))).all() == []


# -- input is text, in every answer -------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/admin/?number={}",
        "/admin/?number={}*",
        "/admin/?ip={}",
        "/admin/?country={}",
        "/admin/?period={}",
        "/admin/?since={}",
        "/admin/?until={}",
        "/admin/?before={}",
        "/admin/summary?ip={}",
        "/admin/summary?since={}",
        "/admin/attempts.csv?ip={}",
        "/admin/attempts.csv?number={}*",
        "/admin/attempts.csv?until={}",
        "/admin/numbers/{}",
        "/admin/ips/{}",
        "/admin/verifications/{}",
        "/admin/deny?value={}",
        "/admin/deny?action={}",
        "/admin/deny?value=%2B31612345678&back=/admin/{}",
        "/admin/deny-list?done={}",
    ],
)
async def test_input_in_a_page_is_text_never_markup(operator: httpx.AsyncClient, path: str) -> None:
    response = await operator.get(path.format(quote(HOSTILE, safe="")))
    assert response.status_code < 500
    assert response.headers["content-type"].startswith("text/html")
    assert MARKER not in response.text


async def test_a_csv_with_bad_filters_answers_an_escaped_page(operator: httpx.AsyncClient) -> None:
    """The reproduction of the issue: the CSV's bad-filter answer quoted the filter as HTML."""
    response = await operator.get("/admin/attempts.csv?ip=" + quote("<form hx-post=deny hx-trigger=load>"))
    assert response.status_code == 400 and response.headers["content-type"].startswith("text/html")
    assert "<form hx-post" not in response.text
    page = text_of(response.text)
    assert "Fix the filters first" in page
    assert "“<form hx-post=deny hx-trigger=load>” is not an IP address or network" in page


async def test_a_refused_action_shows_its_input_as_text(operator: httpx.AsyncClient, db) -> None:
    response = await post_action(operator, action="deny", value=HOSTILE, back="/admin/" + HOSTILE)
    assert response.status_code == 400
    assert MARKER not in response.text
    response = await post_action(operator, action=HOSTILE, value="+31612345678")
    assert response.status_code == 400
    assert MARKER not in response.text
    await nothing_recorded(db)


async def test_a_form_that_cant_be_read_answers_a_page(operator: httpx.AsyncClient, db) -> None:
    response = await operator.post("/admin/deny", content=HOSTILE.encode(), headers={"content-type": "text/html"})
    assert response.status_code == 415
    assert response.headers["content-type"].startswith("text/html")
    assert "Send the form as application/x-www-form-urlencoded." in text_of(response.text)
    await nothing_recorded(db)


# -- the session's form token ---------------------------------------------------------------------------


async def test_every_operators_form_that_posts_carries_the_form_token(operator: httpx.AsyncClient) -> None:
    for path in ("/admin/deny?action=deny", "/admin/deny?action=allow&value=%2B31612345678"):
        html = (await operator.get(path)).text
        assert html.count('method="post"') == html.count(f'name="{csrf.FIELD}"') == 1


async def test_the_form_token_belongs_to_the_session(operator: httpx.AsyncClient, client_for) -> None:
    first, again = await form_token(operator), await form_token(operator)
    async with client_for("192.0.2.50", auth=OPERATOR) as other_browser:
        other = await form_token(other_browser)
    assert first == again, "one token per session"
    assert other != first, "another browser's session has its own"
    assert len(first) >= 32


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(None, id="no token, page never shown"),
        pytest.param("", id="empty"),
        pytest.param("forged", id="forged"),
        pytest.param("é" * 43, id="not ascii"),
        pytest.param("other session", id="another session's"),
    ],
)
async def test_an_action_without_the_sessions_form_token_is_refused_and_changes_nothing(
    operator: httpx.AsyncClient, client_for, client: httpx.AsyncClient, db, token: str | None
) -> None:
    fields = {"action": "deny", "value": "+31612345678", "reason": "forged"}
    if token == "other session":
        await form_token(operator)  # the operator's own session has a token too, a different one
        async with client_for("192.0.2.50", auth=OPERATOR) as other_browser:
            token = await form_token(other_browser)
    if token is not None:
        fields[csrf.FIELD] = token
    response = await operator.post("/admin/deny", data=fields)
    assert response.status_code == 403
    assert response.headers["cache-control"] == "no-store"
    page = text_of(response.text)
    assert "so nothing was changed" in page and "submit it from there" in page
    await nothing_recorded(db)
    assert (await client.post("/verify", data={"country": "NL", "phone": "0612345678"})).status_code == 303, (
        "not denied"
    )


async def test_the_confirmation_page_cant_be_skipped_for_allow_either(operator: httpx.AsyncClient, db) -> None:
    assert (await post_action(operator, action="deny", value="+31612345678")).status_code == 303
    response = await operator.post("/admin/deny", data={"action": "allow", "value": "+31612345678"})
    assert response.status_code == 403
    async with db() as session:
        assert [(e.kind, e.value) for e in (await session.scalars(select(DenyEntry))).all()] == [
            ("number", "+31612345678")
        ]


# -- ?done= -------------------------------------------------------------------------------------------


async def test_done_shows_only_the_apps_own_messages(operator: httpx.AsyncClient) -> None:
    spoofed = await operator.get("/admin/deny-list?done=" + quote("Your session expired: call +31 20 123 4567"))
    assert spoofed.status_code == 200
    assert "Your session expired" not in spoofed.text and 'role="status"' not in spoofed.text
    for key, message in (
        ("denied", "Denied."),
        ("allowed", "Allowed again."),
        ("already-denied", "Nothing to do: that was denied already."),
        ("not-denied", "Nothing to do: that was not on the deny list."),
    ):
        assert f"Signed in as admin {message} Deny list" in text_of(
            (await operator.get(f"/admin/deny-list?done={key}")).text
        )


async def test_an_action_says_when_there_was_nothing_to_do(operator: httpx.AsyncClient) -> None:
    assert (await post_action(operator, action="allow", value="+31612345678")).headers["location"] == (
        "/admin/deny-list?done=not-denied"
    )
    await post_action(operator, action="deny", value="+31612345678")
    assert (await post_action(operator, action="deny", value="+31612345678")).headers["location"] == (
        "/admin/deny-list?done=already-denied"
    )
