"""The hand-off's rows on the operators' pages."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from webapp.oidc.provider import Provider

from ..conftest import OPERATOR, FakeClock
from .conftest import NUMBER, Registered, exchange, issue_code


async def test_the_attempts_table_filters_by_the_hand_off_outcomes_and_kinds(
    provider: Provider, shop: Registered, clock: FakeClock, site_server: httpx.AsyncClient,
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
