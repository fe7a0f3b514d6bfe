"""The operators' pages: the attempts table, a number's and an IP's story, the deny list, the hand-off's sites.

HTTP only, like the flow's routes: read the query, ask `reports` /
`denylist` / `circuit`, render. Every handler is `auth.operator_only` (HTTP
Basic, no-store, and the session's form token on a POST), and every body
that holds input is an autoescaped template.

- `auth` – who may see the pages (`Operators`, `operator_only`)
- `pages` – `AdminPages`: the whole page or the fragment an htmx request targets
- `filters` – what the operator typed, read once (`Filters.from_query`)
- `attempts`, `summary` – the table, its CSV (`export`) and its summary (`chart`)
- `details` – a number's, an IP's and a verification's pages; the sites
- `deny` – the deny list, its confirmation step and the action
"""

from __future__ import annotations

from starlette.routing import BaseRoute, Route

from webapp.admin import attempts, deny, details, summary
from webapp.admin.pages import AdminPages

__all__ = ["AdminPages", "routes"]


def routes() -> list[BaseRoute]:
    """Every operators' page (mounted only when the operators have a password)."""
    return [
        Route("/admin/", attempts.attempts_index, methods=["GET"]),
        Route("/admin/summary", summary.attempts_summary, methods=["GET"]),
        Route("/admin/attempts.csv", attempts.attempts_csv, methods=["GET"]),
        Route("/admin/numbers/{number}", details.number_detail, methods=["GET"]),
        Route("/admin/ips/{ip}", details.ip_detail, methods=["GET"]),
        Route("/admin/verifications/{id}", details.verification_detail, methods=["GET"]),
        Route("/admin/clients", details.clients_index, methods=["GET"]),
        Route("/admin/deny-list", deny.deny_list, methods=["GET"]),
        Route("/admin/deny", deny.deny_confirm, methods=["GET"]),
        Route("/admin/deny", deny.deny_apply, methods=["POST"]),
    ]
