"""The hand-off's rows on the operators' pages."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from datetime import timedelta

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.oidc.support import NUMBER, SHOP_CALLBACK, Registered, exchange, issue_code, register
from tests.support import OPERATOR, FakeClock, seed, text_of
from webapp.models import Attempt
from webapp.oidc import clients
from webapp.oidc.provider import Provider


async def test_the_attempts_table_filters_by_the_hand_off_outcomes_and_kinds(
    provider: Provider,
    shop: Registered,
    clock: FakeClock,
    site_server: httpx.AsyncClient,
    client_for: Callable[..., httpx.AsyncClient],
) -> None:
    issued = await issue_code(provider, shop, clock)
    await exchange(site_server, shop, issued)
    await exchange(site_server, shop, issued)  # a second use: oidc_error
    async with client_for("192.0.2.50", auth=OPERATOR) as operator:
        issued_rows = await operator.get("/admin/", params={"outcome": "token_issued", "kind": "token"})
        refused_rows = await operator.get("/admin/", params={"outcome": "oidc_error"})
    assert issued_rows.status_code == 200 and "Unknown outcomes" not in issued_rows.text
    assert _table(issued_rows).count('class="badge handoff">token issued') == 1
    assert NUMBER in _table(issued_rows) or "+31 6 12345678" in _table(issued_rows)
    assert _table(refused_rows).count('class="badge handoff">oidc error') == 1
    assert "code issued" not in _table(refused_rows)


def _table(response: httpx.Response) -> str:
    """The attempts table alone, without the filter form's outcome list."""
    return response.text.split('<table class="attempts"', 1)[1].split("</table>", 1)[0]


def _row(clock: FakeClock, outcome: str, client_id: str | None, kind: str = "start") -> Attempt:
    return Attempt(
        created_at=clock.now - timedelta(minutes=5),
        kind=kind,
        number=NUMBER,
        region="NL",
        ip="198.51.100.1",
        channel="tts",
        outcome=outcome,
        client_id=client_id,
    )


async def test_the_sites_page_lists_each_client_without_its_secret(
    provider: Provider,
    shop: Registered,
    other_site: Registered,
    clock: FakeClock,
    site_server: httpx.AsyncClient,
    operator: httpx.AsyncClient,
    db: async_sessionmaker[AsyncSession],
) -> None:
    clock.advance(60)
    await exchange(site_server, shop, await issue_code(provider, shop, clock))
    response = await operator.get("/admin/clients")
    assert response.status_code == 200 and response.headers["cache-control"] == "no-store"
    text = text_of(response.text)
    assert f"Example shop {shop.client_id} {SHOP_CALLBACK} 2026-11-26 12:00:00 UTC 2026-11-26 12:01:00 UTC" in text
    assert f"Other site {other_site.client_id} http://127.0.0.1:5000/cb 2026-11-26 12:00:00 UTC never" in text
    async with db() as session:
        hashes = [c.secret_hash for c in await clients.all_clients(session)]
    assert not any(h in response.text for h in hashes) and shop.secret not in response.text
    assert f'href="/admin/?client={shop.client_id}"' in response.text


async def test_a_sites_name_is_text_on_the_operators_pages(
    operator: httpx.AsyncClient,
    db: async_sessionmaker[AsyncSession],
    clock: FakeClock,
) -> None:
    site = await register(db, clock, '<img src=x hx-post="/admin/deny">', SHOP_CALLBACK)
    await seed(db, [_row(clock, "handoff_started", site.client_id, kind="handoff")])
    for path in ("/admin/clients", "/admin/"):
        html = (await operator.get(path)).text
        assert "<img src=x" not in html and "&lt;img src=x hx-post=&#34;/admin/deny&#34;&gt;" in html


async def test_the_attempts_table_filters_by_site_and_names_it(
    shop: Registered,
    other_site: Registered,
    operator: httpx.AsyncClient,
    db: async_sessionmaker[AsyncSession],
    clock: FakeClock,
) -> None:
    await seed(
        db, [_row(clock, "sent", shop.client_id), _row(clock, "sent", other_site.client_id), _row(clock, "sent", None)]
    )
    response = await operator.get("/admin/", params={"client": shop.client_id})
    table = _table(response)
    assert response.status_code == 200 and _body(table).count("<tr>") == 1
    assert f'<a href="/admin/?client={shop.client_id}" class="site">Example shop</a>' in table
    assert f'<option value="{shop.client_id}" selected>Example shop</option>' in response.text
    assert _body(_table(await operator.get("/admin/"))).count("<tr>") == 3


@pytest.mark.parametrize("client_id", ["nobody", "x" * 32, "'; DROP TABLE attempts; --", "\x00" * 32])
async def test_a_site_filter_that_is_no_client_id_is_a_400_that_says_so(
    operator: httpx.AsyncClient,
    client_id: str,
) -> None:
    response = await operator.get("/admin/", params={"client": client_id})
    assert response.status_code == 400 and "is not a site&#39;s client id" in response.text


async def test_the_summary_shows_conversion_per_site(
    shop: Registered,
    other_site: Registered,
    operator: httpx.AsyncClient,
    db: async_sessionmaker[AsyncSession],
    clock: FakeClock,
) -> None:
    rows = [_row(clock, "handoff_started", shop.client_id, "handoff") for _ in range(5)]
    rows += [_row(clock, "sent", shop.client_id) for _ in range(4)]
    rows += [_row(clock, "verified", shop.client_id, "check") for _ in range(3)]
    rows += [_row(clock, "code_issued", shop.client_id, "handoff") for _ in range(3)]
    rows += [_row(clock, "handoff_started", other_site.client_id, "handoff")]
    rows += [_row(clock, "sent", other_site.client_id) for _ in range(10)]
    rows += [_row(clock, "verified", other_site.client_id, "check")]
    rows += [_row(clock, "sent", None) for _ in range(7)]  # the standalone page: no site
    await seed(db, rows)
    html = (await operator.get("/admin/summary")).text
    sites = html.split('<table class="small sites">', 1)[1].split("</table>", 1)[0]
    found = [(flag, text_of(cells)) for flag, cells in re.findall(r'<tr class="(bad)?">(.*?)</tr>', sites, re.DOTALL)]
    assert found == [("", "Example shop 5 4 3 75 % 3"), ("bad", "Other site 1 10 1 10 % 0")]


async def test_the_csv_names_the_site_and_the_reason(
    shop: Registered,
    operator: httpx.AsyncClient,
    db: async_sessionmaker[AsyncSession],
    clock: FakeClock,
) -> None:
    refused = _row(clock, "oidc_error", shop.client_id, "token")
    refused.reason = "invalid_grant: The code has expired."
    await seed(db, [refused])
    [line] = list(csv.DictReader(io.StringIO((await operator.get("/admin/attempts.csv")).text)))
    assert (line["client_id"], line["reason"]) == (shop.client_id, "invalid_grant: The code has expired.")


def _body(table: str) -> str:
    return table.split("<tbody>", 1)[1]
