"""The operators' pages over HTTP, on SQLite and PostgreSQL: access, filters, pages, summary, CSV, actions."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta
from html import unescape

import httpx
import pytest
from sqlalchemy import select
from starlette.datastructures import Secret

from tests.support import OPERATOR, FakeClock, attempts, form_token, post_action, row, seed, text_of, token_in
from webapp import csrf, report_summary, reports
from webapp.models import AdminAction, CircuitBreak
from webapp.passwords import check_hash, hash_password, verify_password
from webapp.reports import AttemptFilter

PATHS = [
    "/admin/",
    "/admin/summary",
    "/admin/?outcome=sent",
    "/admin/attempts.csv",
    "/admin/numbers/+31612345678",
    "/admin/ips/203.0.113.10",
    "/admin/verifications/abc",
    "/admin/deny-list",
    "/admin/deny?action=deny&value=%2B31612345678",
]


def tags(html: str) -> list[int]:
    """The latency tags of the rows in the attempts table, in page order."""
    table = html[html.index('<table class="attempts">') :]
    return [int(tag) for tag in re.findall(r'<td class="num">(\d+) ms</td>', table)]


# -- access ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", PATHS)
async def test_every_operators_page_needs_a_login(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Basic ")
    assert response.headers["cache-control"] == "no-store"
    assert "+31612345678" not in response.text


async def test_posting_an_action_needs_a_login(client: httpx.AsyncClient, db) -> None:
    response = await client.post("/admin/deny", data={"action": "deny", "value": "+31612345678"})
    assert response.status_code == 401
    async with db() as session:
        assert (await session.scalars(select(AdminAction))).all() == []


@pytest.mark.parametrize("path", PATHS)
async def test_every_operators_page_answers_no_store(operator: httpx.AsyncClient, path: str) -> None:
    response = await operator.get(path)
    assert response.status_code in (200, 404)
    assert response.headers["cache-control"] == "no-store"


async def test_a_wrong_password_is_refused(client_for) -> None:
    async with client_for(auth=(OPERATOR[0], "wrong")) as client:
        assert (await client.get("/admin/")).status_code == 401
    async with client_for(auth=("root", OPERATOR[1])) as client:
        assert (await client.get("/admin/")).status_code == 401


@pytest.mark.parametrize(
    "settings_changes",
    [
        {
            "messagebird_api_key": Secret("live_test"),
            "messagebird_base_url": "http://127.0.0.1:9",
            "admin_password_hash": None,
        }
    ],
)
async def test_outside_sandbox_without_a_password_the_pages_are_off(client_for, caplog) -> None:
    assert any("operators' pages are off" in r.getMessage() for r in caplog.get_records("setup"))
    async with client_for(auth=OPERATOR) as client:
        assert (await client.get("/admin/")).status_code == 404


@pytest.mark.parametrize("settings_changes", [{"admin_password_hash": None}])
async def test_sandbox_mode_prints_a_generated_password_once(client_for, caplog) -> None:
    [line] = [r.getMessage() for r in caplog.get_records("setup") if "Operators' pages" in r.getMessage()]
    password = re.search(r"with password (\S+) ", line).group(1)  # type: ignore[union-attr]
    async with client_for(auth=("admin", password)) as client:
        assert (await client.get("/admin/")).status_code == 200


def test_password_hashes_are_salted_and_verified() -> None:
    first, second = hash_password("s3cret"), hash_password("s3cret")
    assert first != second and "s3cret" not in first
    assert verify_password("s3cret", first) and verify_password("s3cret", second)
    assert not verify_password("s3cret ", first)
    assert not verify_password("s3cret", "scrypt$1$1$1$bad$hash")
    check_hash(first)
    with pytest.raises(ValueError, match="ADMIN_PASSWORD_HASH is not a hash"):
        check_hash("plain-text-password")


# -- the attempts table and its filters ---------------------------------------------------------


@pytest.fixture
async def mixed(db, clock: FakeClock) -> None:
    """Eight attempts, one of each sort a filter picks out (latency = tag)."""
    await seed(
        db,
        [
            row(clock, 10, latency=101, outcome="sent"),
            row(clock, 20, latency=102, outcome="verified", kind="check"),
            row(clock, 30, latency=103, number="+32450001234", region="BE", ip="198.51.100.77"),
            row(clock, 40, latency=104, number=None, raw_input="not a number", outcome="invalid_number", region="NL"),
            row(clock, 50, latency=105, number="+37180012345", region="LV", ip="203.0.113.5", outcome="blocked_ip"),
            row(clock, 60, latency=106, number="+37180012399", region="LV", ip="203.0.113.6", kind="resend"),
            row(clock, 3 * 3600, latency=107, outcome="wrong_code", kind="check"),
            row(clock, 3 * 86400, latency=108, outcome="sent"),
        ],
    )


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", [101, 102, 103, 104, 105, 106, 107]),
        ("?period=all", [101, 102, 103, 104, 105, 106, 107, 108]),
        ("?period=1h", [101, 102, 103, 104, 105, 106]),
        ("?number=06+12345678", [101, 102, 107]),
        ("?number=%2B31+6+1234+5678&period=all", [101, 102, 107, 108]),
        ("?number=0031612345678", [101, 102, 107]),
        ("?number=%2B3718*", [105, 106]),
        ("?ip=198.51.100.77", [103]),
        ("?ip=203.0.113.0/24", [105, 106]),
        ("?ip=198.51.100.0/23", [101, 102, 103, 104, 107]),
        ("?outcome=sent&outcome=blocked_ip", [101, 103, 105, 106]),
        ("?kind=check", [102, 107]),
        ("?kind=resend&kind=check", [102, 106, 107]),
        ("?country=lv", [105, 106]),
        ("?since=2026-11-26T11:00&until=2026-11-26T11:59:45", [102, 103, 104, 105, 106]),
    ],
)
async def test_each_filter_picks_its_rows(
    operator: httpx.AsyncClient, mixed: None, query: str, expected: list[int]
) -> None:
    response = await operator.get("/admin/" + query)
    assert response.status_code == 200, unescape(response.text)[:500]
    assert tags(response.text) == expected


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("?number=garbage", "Number:"),
        ("?ip=zz", "is not an IP address or network"),
        ("?ip=10.0.0.0/4", "wider than /8"),
        ("?ip=2001:db8::/64", "IPv6 networks can be filtered up to 256 addresses"),
        ("?since=yesterday", "is not a time"),
        ("?country=Netherlands", "is not a country code"),
        ("?period=forever", "is not a period"),
        ("?outcome=nope", "Unknown outcomes were left out."),
        ("?before=broken", "That page link is broken"),
        ("?number=%00%FF" + "9" * 500, "Number:"),
    ],
)
async def test_bad_filter_input_is_a_clear_400(
    operator: httpx.AsyncClient, mixed: None, query: str, message: str
) -> None:
    response = await operator.get("/admin/" + query)
    assert response.status_code == 400
    assert message in unescape(response.text)
    assert '<table class="attempts">' in response.text, "the rest of the page still works"


async def test_htmx_gets_only_the_results(operator: httpx.AsyncClient, mixed: None) -> None:
    response = await operator.get("/admin/?kind=check", headers={"HX-Request": "true", "HX-Target": "results"})
    assert response.status_code == 200
    assert "<html" not in response.text and '<form class="filters"' not in response.text
    assert tags(response.text) == [102, 107]
    assert "HX-Target" in response.headers["vary"]


async def test_the_page_keeps_the_filters_in_its_links(operator: httpx.AsyncClient, mixed: None) -> None:
    response = await operator.get("/admin/?kind=check&country=NL")
    assert 'value="NL"' in response.text and 'value="check" checked' in response.text
    assert "attempts.csv?kind=check&amp;country=NL&amp;period=24h" in response.text


# -- keyset pages ---------------------------------------------------------------------------------


async def test_pages_with_ties_on_time_skip_and_repeat_nothing(
    operator: httpx.AsyncClient, db, clock: FakeClock
) -> None:
    # 120 attempts, ten to each instant: the page boundaries fall inside ties.
    await seed(db, [row(clock, 60 * (i // 10), latency=1000 + i) for i in range(120)])
    seen: list[int] = []
    url = "/admin/"
    pages = []
    while url:
        html = (await operator.get(url)).text
        pages.append(url)
        seen += tags(html)
        older = re.search(r'href="([^"]+)" rel="next"', html)
        url = unescape(older.group(1)) if older else ""
    assert len(pages) == 3
    assert sorted(seen) == list(range(1000, 1120)) and len(set(seen)) == 120
    # newest first: by time, then by id (newest insert first) within a tie
    assert seen == sorted(seen, key=lambda tag: ((tag - 1000) // 10, -(tag - 1000)))
    back = []
    html = (await operator.get(pages[-1])).text
    while True:
        newer = re.search(r'href="([^"]+)" rel="prev"', html)
        if not newer:
            break
        html = (await operator.get(unescape(newer.group(1)))).text
        back.append(tags(html))
    assert back[-1] == seen[:50], "← Newer leads back to the first page"


async def test_deep_pages_use_keyset_not_offset(db, clock: FakeClock) -> None:
    await seed(db, [row(clock, i, latency=i) for i in range(30)])
    async with db() as session:
        first = await reports.page(session, AttemptFilter(), size=10)
        second = await reports.page(session, AttemptFilter(), before=first.older, size=10)
        third = await reports.page(session, AttemptFilter(), before=second.older, size=10)
        back = await reports.page(session, AttemptFilter(), after=third.newer, size=10)
    assert [r.provider_latency_ms for r in third.rows] == list(range(20, 30))
    assert third.older is None
    assert [r.provider_latency_ms for r in back.rows] == list(range(10, 20))


# -- the summary ------------------------------------------------------------------------------------


@pytest.fixture
async def known(db, clock: FakeClock) -> None:
    """NL: 10 calls, 7 verified; LV: 10 calls, 1 verified; plus refusals from one busy IP."""
    rows = []
    for i in range(10):
        rows.append(row(clock, 100 + i, latency=i, number=f"+3161200000{i}", outcome="sent"))
        if i < 7:
            rows.append(row(clock, 50 + i, latency=i, number=f"+3161200000{i}", outcome="verified", kind="check"))
        rows.append(
            row(clock, 200 + i, latency=i, number=f"+3718001234{i % 2}", region="LV", outcome="sent", ip="203.0.113.5")
        )
    rows.append(row(clock, 300, latency=1, number="+37180012340", region="LV", outcome="verified", kind="check"))
    rows += [
        row(clock, 400 + i, latency=1, number="+37180012340", region="LV", outcome="blocked_number", ip="203.0.113.5")
        for i in range(4)
    ]
    await seed(db, rows)


async def test_the_summary_counts_outcomes_and_conversion(db, known: None, clock: FakeClock) -> None:
    async with db() as session:
        summary = await report_summary.summary(session, AttemptFilter(since=clock.now - timedelta(hours=24)), clock.now)
    assert dict(summary.outcomes) == {"sent": 20, "verified": 8, "blocked_number": 4}
    assert summary.placed == 20 and summary.conversion == pytest.approx(0.4)
    assert summary.countries == {"NL": (10, 7), "LV": (10, 1)}
    assert summary.top_numbers[0] == ("+37180012340", 10)
    assert summary.top_ips == [("198.51.100.1", 18), ("203.0.113.5", 14)]
    assert summary.top_prefixes == [("+316120", 17), ("+371800", 15)]
    assert sum(sum(counts.values()) for _, counts in summary.series) == 32


async def test_the_page_loads_its_summary_separately(operator: httpx.AsyncClient, known: None) -> None:
    html = (await operator.get("/admin/?country=LV")).text
    assert 'hx-get="/admin/summary?country=LV&amp;period=24h" hx-trigger="load"' in html
    assert '<noscript><p><a href="/admin/summary?country=LV&amp;period=24h">' in html
    fragment = await operator.get("/admin/summary?country=LV", headers={"HX-Request": "true", "HX-Target": "summary"})
    assert "<html" not in fragment.text and '<section id="summary"' in fragment.text
    assert "<html" in (await operator.get("/admin/summary?country=LV")).text, "a page of its own without JavaScript"


async def test_the_page_highlights_a_country_that_smells_of_pumping(operator: httpx.AsyncClient, known: None) -> None:
    html = (await operator.get("/admin/summary")).text
    assert re.search(
        r'<tr class="bad"><td>LV</td><td class="num">10</td><td class="num">1</td><td class="num">10 %</td>', html
    )
    assert re.search(
        r'<tr class=""><td>NL</td><td class="num">10</td><td class="num">7</td><td class="num">70 %</td>', html
    )
    assert '<svg class="chart"' in html and "<rect" in html


async def test_an_open_circuit_break_shows_on_the_page(operator: httpx.AsyncClient, db, clock: FakeClock) -> None:
    async with db() as session:
        session.add(
            CircuitBreak(
                country="LV",
                scope="LV",
                epoch=0,
                opened_at=clock.now,
                until=clock.now + timedelta(hours=1),
                verified_share=0.05,
                window=20,
            )
        )
        await session.commit()
    html = text_of((await operator.get("/admin/")).text)
    assert "Circuit breaker open: calls to LV (until" in html and "5 % verified of the last 20" in html


async def test_a_ranges_break_shows_its_scope_on_the_pages(operator: httpx.AsyncClient, db, clock: FakeClock) -> None:
    async with db() as session:
        session.add(
            CircuitBreak(
                country="NL",
                scope="+3197010",
                epoch=0,
                opened_at=clock.now,
                until=clock.now + timedelta(hours=1),
                verified_share=0.0,
                window=20,
                networks=4,
                numbers=18,
            )
        )
        await session.commit()
    assert "Circuit breaker open: calls to numbers starting +3197010 (until" in text_of(
        (await operator.get("/admin/")).text
    )
    listed = text_of((await operator.get("/admin/deny-list")).text)
    assert "numbers starting +3197010 NL" in listed and "0 % of 20 4 networks, 18 numbers open" in listed


# -- CSV ---------------------------------------------------------------------------------------------


async def test_csv_holds_exactly_the_filtered_rows_escaped(operator: httpx.AsyncClient, db, clock: FakeClock) -> None:
    await seed(
        db,
        [
            row(clock, 10, latency=1, number=None, raw_input='=HYPERLINK("http://x")', outcome="invalid_number"),
            row(clock, 20, latency=2, number=None, raw_input="@SUM(A1)", outcome="invalid_number"),
            row(clock, 30, latency=3, number=None, raw_input="-1+1", outcome="invalid_number"),
            row(clock, 40, latency=4, outcome="sent"),
            *[row(clock, 100 + i, latency=100 + i, outcome="verified", kind="check") for i in range(1200)],
        ],
    )
    response = await operator.get("/admin/attempts.csv?outcome=invalid_number&outcome=sent")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    table = list(csv.DictReader(io.StringIO(response.text)))
    assert [r["raw_input"] for r in table[:3]] == ['\'=HYPERLINK("http://x")', "'@SUM(A1)", "'-1+1"]
    assert table[3]["number"] == "'+31612345678"
    assert len(table) == 4
    everything = await operator.get("/admin/attempts.csv?kind=check")
    assert len(list(csv.DictReader(io.StringIO(everything.text)))) == 1200, "more than one batch, every row once"


async def test_csv_with_bad_filters_is_a_400(operator: httpx.AsyncClient) -> None:
    response = await operator.get("/admin/attempts.csv?ip=nonsense")
    assert response.status_code == 400 and "Fix the filters first" in response.text


# -- a number's, an IP's and a verification's pages ---------------------------------------------------


async def test_a_numbers_page_shows_its_story_and_limits(
    operator: httpx.AsyncClient, client: httpx.AsyncClient, app
) -> None:
    await client.post("/verify", data={"country": "NL", "phone": "0612345678"})
    html = text_of((await operator.get("/admin/numbers/+31612345678")).text)
    assert "+31 6 12345678" in html and "Not denied." in html
    assert "pending" in html and "sent" in html
    assert "Calls to this number, 1 per 30 seconds: full , frees up 2026-11-26 12:00:30 UTC" in html
    assert "Calls to this number, 3 per 10 minutes: 2 of 3 left" in html
    assert (await operator.get("/admin/numbers/0612345678")).status_code == 200, "any format, normalised"
    assert (await operator.get("/admin/numbers/hello")).status_code == 404


async def test_an_ips_page_shows_its_attempts_and_limits(
    operator: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    await client.post("/verify", data={"country": "NL", "phone": "0612345678"})
    html = text_of((await operator.get("/admin/ips/203.0.113.10")).text)
    assert "+31 6 12345678" in html and "Calls asked from this address, 5 per 1 minute: 4 of 5 left" in html
    assert (await operator.get("/admin/ips/203.0.113.0/24")).status_code == 404


async def test_a_verifications_page_lists_its_attempts(
    operator: httpx.AsyncClient, client: httpx.AsyncClient, db
) -> None:
    await client.post("/verify", data={"country": "NL", "phone": "0612345678"})
    await client.post("/confirm", data={"code": "000000"})
    [sent, *_] = await attempts(db)
    html = (await operator.get(f"/admin/verifications/{sent.verification_id}")).text
    assert "pending" in html and "wrong code" in html
    assert (await operator.get("/admin/verifications/nope")).status_code == 404


# -- acting on it -------------------------------------------------------------------------------------


async def test_denying_from_the_page_reaches_the_guard_and_is_recorded(
    operator: httpx.AsyncClient, client: httpx.AsyncClient, db
) -> None:
    confirm = await operator.get("/admin/deny?action=deny&value=%2B31612345678&back=/admin/numbers/%2B31612345678")
    assert confirm.status_code == 200 and "This denies the number" in confirm.text
    done = await operator.post(
        "/admin/deny",
        data={
            csrf.FIELD: token_in(confirm.text),
            "action": "deny",
            "value": "+31612345678",
            "reason": "abuse report",
            "back": "/admin/numbers/+31612345678",
        },
    )
    assert done.status_code == 303 and done.headers["location"] == "/admin/numbers/+31612345678?done=denied"
    page = text_of((await operator.get(done.headers["location"])).text)
    assert "Signed in as admin Denied. +31 6 12345678 Deny list Denied by: number +31612345678" in page

    refused = await client.post("/verify", data={"country": "NL", "phone": "0612345678"})
    assert refused.status_code == 422

    await post_action(operator, action="allow", value="+31612345678")
    allowed = await client.post("/verify", data={"country": "NL", "phone": "0612345678"})
    assert allowed.status_code == 303
    async with db() as session:
        actions = (await session.scalars(select(AdminAction).order_by(AdminAction.id))).all()
    assert [(a.operator, a.action, a.kind, a.value, a.reason) for a in actions] == [
        ("admin", "deny", "number", "+31612345678", "abuse report"),
        ("admin", "allow", "number", "+31612345678", None),
    ]
    listed = unescape((await operator.get("/admin/deny-list")).text)
    assert "deny number <code>+31612345678</code>" in listed


async def test_denying_a_prefix_and_a_network(operator: httpx.AsyncClient, client_for) -> None:
    await post_action(operator, action="deny", value="+3161234*")
    await post_action(operator, action="deny", value="198.51.100.0/24")
    async with client_for("198.51.100.20") as denied_ip, client_for("192.0.2.1") as other:
        assert (await denied_ip.post("/verify", data={"country": "NL", "phone": "0698765432"})).status_code == 422
        assert (await other.post("/verify", data={"country": "NL", "phone": "0612345678"})).status_code == 422
        assert (await other.post("/verify", data={"country": "NL", "phone": "0612000100"})).status_code == 303


async def test_a_bad_action_value_is_a_clear_400(operator: httpx.AsyncClient, db) -> None:
    response = await post_action(operator, action="deny", value="hello")
    assert response.status_code == 400 and "is not a number" in unescape(response.text)
    response = await post_action(operator, action="explode", value="+31612345678")
    assert response.status_code == 400
    async with db() as session:
        assert (await session.scalars(select(AdminAction))).all() == []


async def test_an_action_never_redirects_off_site(operator: httpx.AsyncClient) -> None:
    done = await post_action(operator, action="deny", value="+31612345678", back="//evil.test/x")
    assert done.headers["location"] == "/admin/deny-list?done=denied"


async def test_a_cross_site_action_is_refused(operator: httpx.AsyncClient, db) -> None:
    """Basic credentials ride along on a forged cross-site form; the origin check stops it."""
    token = await form_token(operator)
    response = await operator.post(
        "/admin/deny",
        data={csrf.FIELD: token, "action": "allow", "value": "+31612345678"},
        headers={"Origin": "https://evil.test"},
    )
    assert response.status_code == 403
