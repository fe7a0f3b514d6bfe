"""The operators' attempts page in real headless Chromium: htmx filters, keyset pages, history.

The attempts table is seeded straight into the test's database: 130 rows over
the last hours, two numbers, a mix of outcomes, and groups of ten rows sharing
one `created_at`, so that page boundaries fall inside ties. Each row has its
own `provider_latency_ms`, which is how a row is recognised on screen. The real
app is served by uvicorn (the `live_server` fixture of tests/browser/conftest.py)
and Chromium signs in with HTTP Basic. Screenshots go to /tmp/shots/admin-*.png.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from sqlalchemy import select

from tests.browser.support import WAIT_MS, expect, shot, watch
from tests.support import OPERATOR, on_own_loop
from webapp.db import create_engine, create_sessionmaker
from webapp.models import Attempt, DenyEntry
from webapp.pages import htmx_file
from webapp.reports import PAGE_SIZE
from webapp.settings import Settings

SEEDED = 130
TIE = 10  # consecutive seeded rows share one created_at
NUMBERS = ("+31612345678", "+31687654321")
TYPED = "+31 6 12345678"  # NUMBERS[0] as the operator types it, and as the table shows it
OUTCOMES = (
    "sent",
    "verified",
    "wrong_code",
    "sent",
    "sent",
    "blocked_ip",
    "invalid_code",
    "provider_error",
    "verified",
    "expired",
)


@dataclass(frozen=True)
class Seeded:
    """A seeded attempt, as the test expects to see it."""

    id: int
    created_at: datetime
    number: str
    outcome: str
    latency: int


def _seed_rows(now: datetime) -> list[Attempt]:
    rows = []
    for i in range(SEEDED):
        outcome = OUTCOMES[i % len(OUTCOMES)]
        rows.append(
            Attempt(
                created_at=now - timedelta(minutes=7 + (i // TIE) * 53, seconds=i // TIE),
                kind="check" if outcome in ("verified", "wrong_code", "invalid_code", "expired") else "start",
                number=NUMBERS[1] if i % 7 == 3 else NUMBERS[0],
                region="NL",
                ip=f"203.0.113.{i % 5 + 1}",
                channel="tts",
                outcome=outcome,
                provider_latency_ms=1000 + i,  # unique: names the row on screen
            )
        )
    return rows


async def _insert(database_url: str) -> list[Seeded]:
    engine = create_engine(database_url)
    try:
        async with create_sessionmaker(engine)() as session:
            rows = _seed_rows(datetime.now(UTC))  # the live server runs on the real clock
            session.add_all(rows)
            await session.commit()
            return [Seeded(r.id, r.created_at, r.number, r.outcome, r.provider_latency_ms) for r in rows]
    finally:
        await engine.dispose()


async def _deny_entries(database_url: str) -> list[tuple[str, str, str | None]]:
    engine = create_engine(database_url)
    try:
        async with create_sessionmaker(engine)() as session:
            return [(e.kind, e.value, e.reason) for e in (await session.scalars(select(DenyEntry))).all()]
    finally:
        await engine.dispose()


def deny_entries(settings: Settings) -> list[tuple[str, str, str | None]]:
    """The deny list in the test's database: (kind, value, reason)."""
    return on_own_loop(_deny_entries(settings.database_url))


@pytest.fixture
def seeded(settings: Settings) -> list[Seeded]:
    """The attempts table of this test's database, seeded; the rows as inserted."""
    return on_own_loop(_insert(settings.database_url))


def newest_first(rows: list[Seeded]) -> list[int]:
    """The latencies of `rows` in the table's order: created_at, then id, newest first."""
    return [r.latency for r in sorted(rows, key=lambda r: (r.created_at, r.id), reverse=True)]


@dataclass
class AdminPage:
    """The operators' page in a browser tab, and what it did."""

    page: object
    base_url: str
    errors: list[str]
    documents: list[str] = field(default_factory=list)  # main-frame document loads (pushState is none)

    def open(self) -> None:
        """Load /admin/ once and mark the window, so a reload would show."""
        self.page.goto(self.base_url + "/admin/")
        expect(self.page.get_by_role("heading", name="Attempts", level=1)).to_be_visible()
        self.page.evaluate("window.__marker = 1")

    def settled(self, action: Callable[[], object]) -> None:
        """Do `action`, then wait until htmx has swapped a response in or restored a history entry."""
        before = self.page.evaluate("window.__swaps")
        action()
        self.page.wait_for_function("n => window.__swaps > n", arg=before)

    def rows(self) -> list[list[str]]:
        """The attempts table's rows, as the texts of their cells."""
        return self.page.locator("#results table.attempts tbody tr").evaluate_all(
            "rows => rows.map(r => Array.from(r.cells, c => c.textContent.trim()))"
        )

    def latencies(self) -> list[int]:
        """The rows shown, by their latency column ("1042 ms")."""
        return [int(cells[7].removesuffix(" ms")) for cells in self.rows()]

    def total(self) -> object:
        """The summary's "attempts" tile."""
        return self.page.locator("#results .tile .big").first

    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.page.url).query)

    def shot(self, name: str) -> None:
        # caret="initial": hiding the caret leaves style="" on every input, which htmx's
        # history snapshot then carries back in, and the CSP rightly refuses.
        shot(self.page, f"admin-{name}", caret="initial")

    def assert_not_reloaded(self) -> None:
        assert self.page.evaluate("window.__marker") == 1, "the page reloaded"
        assert self.documents == [self.base_url + "/admin/"], f"main frame loaded documents: {self.documents}"


@pytest.fixture
def admin(browser: object, live_server: str) -> Iterator[AdminPage]:
    """A fresh context signed in as the operator (in Amsterdam), watched for console errors and CSP violations."""
    context = browser.new_context(
        viewport={"width": 1280, "height": 900},
        http_credentials={"username": OPERATOR[0], "password": OPERATOR[1]},
        locale="en-GB",
        timezone_id="Europe/Amsterdam",
    )
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    watched = watch(page, live_server)
    page.add_init_script(
        "window.__swaps = 0;"
        "document.addEventListener('htmx:afterSettle', function () { window.__swaps += 1; });"
        "document.addEventListener('htmx:historyRestore', function () { window.__swaps += 1; });"
    )
    opened = AdminPage(page, live_server, watched.errors)
    page.on(
        "request", lambda r: r.is_navigation_request() and r.frame == page.main_frame and opened.documents.append(r.url)
    )
    yield opened
    context.close()


def test_filters_and_pages_swap_in_place_and_back_restores_them(admin: AdminPage, seeded: list[Seeded]) -> None:
    page = admin.page
    mine = [r for r in seeded if r.number == NUMBERS[0]]
    expected = newest_first(mine)
    assert len(expected) > 2 * PAGE_SIZE
    by_latency = {r.latency: r for r in seeded}
    for edge in (PAGE_SIZE, 2 * PAGE_SIZE):  # the point of the ties: page boundaries inside them
        assert by_latency[expected[edge - 1]].created_at == by_latency[expected[edge]].created_at

    admin.open()
    expect(admin.total()).to_have_text(str(SEEDED))
    assert admin.latencies() == newest_first(seeded)[:PAGE_SIZE]
    admin.shot("1-unfiltered")

    number = page.locator("form.filters input[name=number]")
    number.fill(TYPED)
    admin.settled(lambda: number.press("Enter"))
    expect(page).to_have_url(re.compile(r"[?&]number=[^&]"))
    assert admin.query()["number"] == [TYPED]
    expect(admin.total()).to_have_text(str(len(mine)))
    assert {cells[1] for cells in admin.rows()} == {TYPED}
    visited = [(page.url, admin.latencies())]  # the history entries from here on: URL, rows shown
    admin.shot("2-number-filter")

    # Older → to the end, then ← Newer to the top: the same pages, no row repeated or skipped.
    older = page.get_by_role("link", name="Older →")
    newer = page.get_by_role("link", name="← Newer")
    pages = [admin.latencies()]
    while older.count():
        admin.settled(older.click)
        expect(page).to_have_url(re.compile(r"[?&]before="))
        assert admin.query()["number"] == [TYPED]
        assert {cells[1] for cells in admin.rows()} == {TYPED}
        pages.append(admin.latencies())
        visited.append((page.url, pages[-1]))
    admin.shot("3-last-page")
    assert [len(p) for p in pages] == [PAGE_SIZE, PAGE_SIZE, len(mine) - 2 * PAGE_SIZE]
    assert [latency for p in pages for latency in p] == expected

    expect(newer).to_be_visible()
    back_up = [admin.latencies()]
    while newer.count():
        admin.settled(newer.click)
        expect(page).to_have_url(re.compile(r"[?&]after="))
        back_up.append(admin.latencies())
        visited.append((page.url, back_up[-1]))
    assert back_up == pages[::-1]
    expect(older).to_be_visible()

    # A second filter on top: the verified attempts of that number.
    verified = page.get_by_role("checkbox", name="verified", exact=True)
    admin.settled(verified.check)
    expect(page).to_have_url(re.compile(r"[?&]outcome=verified(&|$)"))
    assert admin.query()["number"] == [TYPED]
    mine_verified = [r for r in mine if r.outcome == "verified"]
    expect(admin.total()).to_have_text(str(len(mine_verified)))
    assert admin.latencies() == newest_first(mine_verified)
    assert {(cells[1], cells[6]) for cells in admin.rows()} == {(TYPED, "verified")}
    admin.shot("4-number-and-verified")

    # Back, one entry at a time, through every page seen to the first filtered one.
    for url, latencies in reversed(visited):
        admin.settled(page.go_back)
        expect(page).to_have_url(url)
        assert admin.latencies() == latencies
        expect(admin.total()).to_have_text(str(len(mine)))
    expect(verified).not_to_be_checked()
    admin.shot("5-back-to-number-filter")

    # What Back restored is live: its pager still swaps in place.
    admin.settled(older.click)
    expect(page).to_have_url(re.compile(r"[?&]before="))
    assert admin.latencies() == pages[1]

    admin.assert_not_reloaded()
    assert admin.errors == []


def test_back_undoes_one_filter_change_form_included(admin: AdminPage, seeded: list[Seeded]) -> None:
    page = admin.page
    admin.open()
    number = page.locator("form.filters input[name=number]")
    verified = page.get_by_role("checkbox", name="verified", exact=True)
    number.fill(TYPED)
    admin.settled(lambda: number.press("Enter"))
    expect(page).to_have_url(re.compile(r"[?&]number=[^&]"))
    filtered = page.url
    admin.settled(verified.check)
    expect(page).to_have_url(re.compile(r"[?&]outcome=verified(&|$)"))

    admin.settled(page.go_back)
    expect(page).to_have_url(filtered)
    expect(admin.total()).to_have_text(str(sum(r.number == NUMBERS[0] for r in seeded)))
    assert (number.input_value(), verified.is_checked()) == (TYPED, False), "the form does not show the URL's filters"

    admin.settled(page.go_back)
    expect(page).to_have_url(admin.base_url + "/admin/")
    expect(admin.total()).to_have_text(str(SEEDED))
    assert number.input_value() == ""
    admin.assert_not_reloaded()
    assert admin.errors == []


# -- hostile links (issue 7) --------------------------------------------------------------------------

#: The links of the hostile test, as the filter form would send them. The first loaded the
#: app's own htmx into the CSV's bad-filter answer and had it post a deny of every +3… number;
#: the second sent the operator to another site.
HOSTILE_LINKS = {
    "deny by htmx": {
        "number": f"<script src=/static/{htmx_file()}>*",
        "ip": "</script><form hx-post=deny hx-trigger=load>",
        "since": "<input name=action value=deny>",
        "until": "<input name=value value=+3*>",
    },
    "refresh off-site": {"ip": "<meta http-equiv=refresh content=0;//evil.test>"},
}


@pytest.mark.parametrize("path", ["/admin/attempts.csv", "/admin/", "/admin/summary"])
@pytest.mark.parametrize("link", HOSTILE_LINKS)
def test_a_hostile_link_neither_acts_nor_leaves_the_site(
    admin: AdminPage, settings: Settings, path: str, link: str
) -> None:
    page = admin.page
    sent: list[str] = []  # every request that is not a GET
    off_site: list[str] = []

    def only_this_site(route: object) -> None:
        if route.request.url.startswith(admin.base_url + "/"):
            route.continue_()
        else:
            off_site.append(route.request.url)
            route.abort()

    page.on("request", lambda request: request.method != "GET" and sent.append(f"{request.method} {request.url}"))
    page.context.route("**/*", only_this_site)
    filters = HOSTILE_LINKS[link]
    # networkidle: whatever the page would load or post on its own has been asked for by then.
    page.goto(f"{admin.base_url}{path}?{urlencode(filters)}", wait_until="networkidle")
    admin.shot(f"hostile-{link.replace(' ', '-')}{path.replace('/', '-').replace('.', '-')}")

    expect(page.locator("main")).to_contain_text(filters["ip"])  # shown, as text
    assert page.locator("main form[hx-post], main meta, main input[name=value]").count() == 0
    assert sent == [] and off_site == []
    assert page.url.startswith(admin.base_url + path)
    assert deny_entries(settings) == []


def test_denying_from_the_confirmation_page_works_in_the_browser(admin: AdminPage, settings: Settings) -> None:
    page = admin.page
    page.goto(admin.base_url + "/admin/deny?action=deny&value=%2B31612345678")
    page.get_by_label("Reason").fill("abuse report")
    page.get_by_role("button", name="Deny", exact=True).click()
    expect(page).to_have_url(admin.base_url + "/admin/deny-list?done=denied")
    expect(page.get_by_role("status")).to_have_text("Denied.")
    assert deny_entries(settings) == [("number", "+31612345678", "abuse report")]
    admin.shot("denied")
    assert admin.errors == []
