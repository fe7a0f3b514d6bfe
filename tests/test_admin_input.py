"""Hostile input to the operators' pages, on SQLite and PostgreSQL: a clear 4xx, never a 500; CSV cells no spreadsheet runs.

Every query value, path parameter and form field of the operators' pages that
reaches SQL or datetime arithmetic is covered by a named case here, and a
small property-based test (hypothesis, derandomised so CI is repeatable)
sends arbitrary values to all of them.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st
from sqlalchemy import select

from tests.support import FakeClock, form_token, post_action, row, seed, text_of
from webapp import csrf
from webapp.models import AdminAction, DenyEntry

FILTERED_PAGES = ("/admin/", "/admin/summary", "/admin/attempts.csv")
HUGE_ID_CURSOR = "20261126T115900.000000Z~" + "9" * 30


@pytest.fixture
async def one_attempt(db, clock: FakeClock) -> None:
    await seed(db, [row(clock, 60, latency=4242)])


# -- filters ------------------------------------------------------------------------------------


@pytest.mark.parametrize("page", FILTERED_PAGES)
@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("?since=0001-01-01T00:00%2B01:00", "is not a time for “from”"),
        ("?until=9999-12-31T23:59-01:00", "is not a time for “until”"),
        ("?since=9999-12-31T22:00&until=9999-12-31T23:59", "out of range for “from”: give a time from 1970 to 2999"),
        ("?since=1969-12-31T23:59", "out of range for “from”"),
        ("?ip=fe80::1%25%00", "is not an IP address or network"),
        ("?ip=fe80::1%25eth0", "is not an IP address or network"),
        ("?number=%2B31%00*", "Number:"),
        ("?number=%00", "Number:"),
        ("?country=N%00", "is not a country code"),
    ],
)
async def test_a_hostile_filter_is_a_clear_400(
    operator: httpx.AsyncClient, one_attempt: None, page: str, query: str, message: str
) -> None:
    response = await operator.get(page + query)
    assert response.status_code == 400
    assert message in text_of(response.text)


@pytest.mark.parametrize(
    "cursor",
    [
        HUGE_ID_CURSOR,
        "20261126T115900.000000Z~9223372036854775808",  # 2**63: one past the biggest id
        "20261126T115900.000000Z~0",
        "20261126T115900.000000Z~-1",
        "20261126T115900.000000Z~１２",  # full-width digits, which int() would take
        "00010101T000000.000000Z~1",
        "99991231T235959.999999Z~1",
        "20261126T115900.000000Z~1%00",
    ],
)
@pytest.mark.parametrize("direction", ["before", "after"])
async def test_a_hostile_page_link_is_a_clear_400(
    operator: httpx.AsyncClient, one_attempt: None, direction: str, cursor: str
) -> None:
    response = await operator.get(f"/admin/?{direction}={quote(cursor, safe='%~')}")
    assert response.status_code == 400
    assert "That page link is broken; showing the newest attempts." in text_of(response.text)
    assert "4242 ms" in response.text, "and the newest attempts are shown"


async def test_the_biggest_page_link_the_app_could_make_still_works(
    operator: httpx.AsyncClient, one_attempt: None
) -> None:
    response = await operator.get("/admin/?before=29991231T235959.999999Z~9223372036854775807")
    assert response.status_code == 200 and "4242 ms" in response.text


# -- paths ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/admin/verifications/%00",
        "/admin/verifications/abc%00def",
        "/admin/verifications/" + "a" * 300,
        "/admin/verifications/%F0%9F%98%80",
        "/admin/ips/fe80::1%25%00",
        "/admin/ips/fe80::1%25eth0",
        "/admin/numbers/%00",
        "/admin/numbers/%2B31612345678%00",
    ],
)
async def test_a_hostile_path_is_a_404(operator: httpx.AsyncClient, path: str) -> None:
    response = await operator.get(path)
    assert response.status_code == 404
    assert "Not found" in response.text


# -- the deny form -----------------------------------------------------------------------------------


async def test_a_control_character_in_the_reason_is_a_clear_400_and_changes_nothing(
    operator: httpx.AsyncClient, db
) -> None:
    response = await post_action(operator, action="deny", value="+31612345678", reason="abuse\x00report")
    assert response.status_code == 400
    assert "The reason can't hold control characters." in text_of(response.text)
    async with db() as session:
        assert (await session.scalars(select(DenyEntry))).all() == []
        assert (await session.scalars(select(AdminAction))).all() == []


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"action": "deny", "value": "hello"}, "is not a number"),
        ({"action": "explode", "value": "+31612345678"}, "The action is deny or allow."),
        ({"action": "deny", "value": "+31612345678", "reason": "a\x07b"}, "The reason can't hold control characters."),
    ],
)
async def test_the_confirmation_and_the_action_refuse_alike(
    operator: httpx.AsyncClient, db, fields: dict[str, str], message: str
) -> None:
    confirm = await operator.get("/admin/deny", params=fields)
    done = await post_action(operator, **fields)
    assert (confirm.status_code, done.status_code) == (400, 400)
    assert message in text_of(confirm.text) and message in text_of(done.text)
    async with db() as session:
        assert (await session.scalars(select(DenyEntry))).all() == []
        assert (await session.scalars(select(AdminAction))).all() == []


@pytest.mark.parametrize("value", ["fe80::1%\x00", "fe80::1%eth0/128", "+3161234%00*", "\x00"])
async def test_a_hostile_deny_value_is_a_clear_400(operator: httpx.AsyncClient, db, value: str) -> None:
    response = await post_action(operator, action="deny", value=value)
    assert response.status_code == 400
    assert "is not a" in text_of(response.text)
    async with db() as session:
        assert (await session.scalars(select(DenyEntry))).all() == []


# -- any value at all ----------------------------------------------------------------------------------

#: Text of any kind (NUL, controls, other scripts; no lone surrogates, which no request
#: can carry), and text made of what parsers trip on.
ANY_TEXT = st.text(st.characters(codec="utf-8"), max_size=45)
SHARP_TEXT = st.text(st.sampled_from("\x00\t :%.+-*~/TZ0123456789abcdef\u00e9\uff0b\uff11"), max_size=45)
TEXT = st.one_of(ANY_TEXT, SHARP_TEXT)
#: Values shaped like what the pages expect, over their whole range.
OFFSETS = st.sampled_from([None, UTC, timezone(timedelta(hours=14)), timezone(timedelta(hours=-12))])
#: datetime's own ends, and the days next to them, where arithmetic overflows.
EDGES = st.sampled_from([datetime.min, datetime.max, datetime(1, 1, 2), datetime(9999, 12, 30), datetime(1969, 12, 31)])
MOMENTS = st.one_of(st.datetimes(), EDGES)
TIMES = st.builds(lambda moment, offset: moment.replace(tzinfo=offset).isoformat(timespec="minutes"), MOMENTS, OFFSETS)
IDS = st.one_of(st.integers(-1000, 10**6), st.integers(2**62, 2**130))
CURSORS = st.builds(lambda at, ident: f"{at:%Y%m%dT%H%M%S.%f}Z~{ident}", MOMENTS, IDS)
NETWORKS = st.builds(
    lambda address, suffix: f"{address}{suffix}",
    st.ip_addresses(),
    st.sampled_from(["", "/8", "/24", "/120", "%eth0", "%\x00"]),
)
NUMBERS = st.one_of(st.from_regex(r"\A\+[0-9]{1,16}\*?\Z"), st.sampled_from(["+3197*", "0612345678", "+31\x00*"]))
FILTERS = st.fixed_dictionaries(
    {},
    optional={
        "number": st.one_of(TEXT, NUMBERS),
        "ip": st.one_of(TEXT, NETWORKS),
        "country": st.one_of(TEXT, st.sampled_from(["NL", "001", "nl"])),
        "period": st.one_of(TEXT, st.sampled_from(["1h", "24h", "7d", "30d", "all"])),
        "since": st.one_of(TEXT, TIMES),
        "until": st.one_of(TEXT, TIMES),
        "outcome": st.one_of(TEXT, st.sampled_from(["sent", "verified"])),
        "kind": st.one_of(TEXT, st.sampled_from(["start", "check"])),
        "before": st.one_of(TEXT, CURSORS),
        "after": st.one_of(TEXT, CURSORS),
    },
)
HYPOTHESIS = hypothesis_settings(
    deadline=None,  # the machine is shared: time says nothing here
    derandomize=True,  # the same examples on every run, so CI is repeatable
    database=None,
    # The app and its database are set up once per test, not per example: on purpose,
    # since no example's state can make another's answer a 500.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@hypothesis_settings(HYPOTHESIS, max_examples=60)
@given(params=FILTERS)
async def test_no_filter_value_makes_a_server_error(
    operator: httpx.AsyncClient, one_attempt: None, params: dict[str, str]
) -> None:
    for page in FILTERED_PAGES:
        response = await operator.get(page, params=params)
        assert response.status_code in (200, 400), (page, params, response.text[:300])


@hypothesis_settings(HYPOTHESIS, max_examples=30)
@given(segment=st.one_of(TEXT, NETWORKS, NUMBERS).filter(lambda text: text not in ("", ".", "..")))
async def test_no_path_makes_a_server_error(operator: httpx.AsyncClient, one_attempt: None, segment: str) -> None:
    for page in ("/admin/numbers/", "/admin/ips/", "/admin/verifications/"):
        response = await operator.get(page + quote(segment, safe=""))
        assert response.status_code in (200, 404), (page, segment, response.text[:300])


@hypothesis_settings(HYPOTHESIS, max_examples=30)
@given(
    action=st.one_of(st.sampled_from(["deny", "allow"]), TEXT),
    value=st.one_of(TEXT, NETWORKS, NUMBERS),
    reason=TEXT,
    back=st.one_of(TEXT, TEXT.map(lambda text: "/admin/" + text)),
)
async def test_no_deny_form_makes_a_server_error(
    operator: httpx.AsyncClient, action: str, value: str, reason: str, back: str
) -> None:
    confirm = await operator.get("/admin/deny", params={"action": action, "value": value, "back": back})
    assert confirm.status_code in (200, 400), (action, value, back, confirm.text[:300])
    fields = {csrf.FIELD: await form_token(operator), "action": action, "value": value, "reason": reason, "back": back}
    response = await operator.post("/admin/deny", data=fields)
    assert response.status_code in (303, 400), (fields, response.text[:300])


# -- CSV cells ---------------------------------------------------------------------------------------------

#: Cells a spreadsheet would run (or split into one it runs), from the issue and their kin: typed → exported.
FORMULAS = {
    '=HYPERLINK("http://x")': '\'=HYPERLINK("http://x")',
    "+1+1": "'+1+1",
    "-1+1": "'-1+1",
    "@SUM(A1)": "'@SUM(A1)",
    "|calc!A0": "'|calc!A0",
    " =1+1": "' =1+1",
    "\u00a0=1+1": "'\u00a0=1+1",
    "\u3000@SUM(A1)": "'\u3000@SUM(A1)",
    "\u200b=1+1": "'\u200b=1+1",
    "\ufeff-2+3": "'\ufeff-2+3",
    "  \u00a0 -2+3": "'  \u00a0 -2+3",
    # full-width = + @ |, and the small hyphen-minus
    "\uff1d1+1": "'\uff1d1+1",
    "\uff0b1": "'\uff0b1",
    "\ufe631": "'\ufe631",
    "\uff20SUM(A1)": "'\uff20SUM(A1)",
    "\uff5ccalc": "'\uff5ccalc",
    # a separator first: the piece after it is a cell of its own to a spreadsheet reading that separator
    ";=1+1": ";'=1+1",
    ",=1+1": ",'=1+1",
    " ; =1+1": " ;' =1+1",
    # controls first: a trigger at the start of a cell by themselves, and separators too
    "\t=1+1": "'\t'=1+1",
    "\r=1+1": "'\r'=1+1",
    "\n=1+1": "'\n'=1+1",
    "\tabc": "'\tabc",
}
HARMLESS = ["not a number", "0612345678", "a=b", "1-2", "'quoted", "  spaced  ", ""]


async def csv_of(operator: httpx.AsyncClient, query: str = "?period=all") -> list[dict[str, str]]:
    response = await operator.get("/admin/attempts.csv" + query)
    assert response.status_code == 200
    return list(csv.DictReader(io.StringIO(response.text, newline="")))


async def test_csv_prefixes_every_cell_a_spreadsheet_would_run(
    operator: httpx.AsyncClient, db, clock: FakeClock
) -> None:
    await seed(
        db,
        [
            row(clock, i + 1, latency=i, number=None, raw_input=text, outcome="invalid_number")
            for i, text in enumerate(FORMULAS)
        ],
    )
    assert [r["raw_input"] for r in await csv_of(operator)] == list(FORMULAS.values())


async def test_csv_leaves_every_other_cell_as_it_is(operator: httpx.AsyncClient, db, clock: FakeClock) -> None:
    await seed(
        db,
        [
            row(clock, i + 1, latency=i, number=None, raw_input=text, outcome="invalid_number")
            for i, text in enumerate(HARMLESS)
        ],
    )
    table = await csv_of(operator)
    assert [r["raw_input"] for r in table] == HARMLESS
    assert {r["outcome"] for r in table} == {"invalid_number"} and {r["ip"] for r in table} == {"198.51.100.1"}


async def test_csv_never_lets_a_separator_inside_a_cell_start_a_formula(
    operator: httpx.AsyncClient, db, clock: FakeClock
) -> None:
    typed = "0612;=1+1,=2+2\t-3\n=4+4\r@5;\uff1d6;7"
    await seed(db, [row(clock, 1, latency=1, number=None, raw_input=typed, outcome="invalid_number")])
    text = (await operator.get("/admin/attempts.csv?period=all")).text
    [exported] = [r["raw_input"] for r in csv.DictReader(io.StringIO(text, newline=""))]
    assert exported == "0612;'=1+1,'=2+2\t'-3\n'=4+4\r'@5;'\uff1d6;7"
    # Read as a spreadsheet set to another separator would: no cell starts a formula.
    for separator in (";", "\t", ","):
        for line in csv.reader(io.StringIO(text, newline=""), delimiter=separator):
            assert not any(cell.lstrip().startswith(("=", "+", "-", "@", "\uff1d")) for cell in line), (separator, line)
