"""The operators' pages: the attempts table, a number's and an IP's story, the hand-off's sites.

HTTP only, like routes.py: read the query, ask `reports` / `denylist` /
`circuit`, render. Every handler is `operator_only` (HTTP Basic, no-store,
and the session's form token on a POST). Every body that holds input is an
autoescaped template. Filter parsing is `filters`; the CSV is `export`; the
deny list's pages are `admin_deny`.
With htmx, changing a filter swaps just the results (`HX-Target: results`)
and pushes the URL, so the address bar always holds a shareable link.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any

from jinja2_fragments import render_block
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from webapp import admin_deny, circuit, csrf, denylist, export, filters, reports
from webapp.chart import stacked_bars
from webapp.filters import FilterError
from webapp.limits import LimiterUnavailable
from webapp.oidc import clients
from webapp.operators import operator_only
from webapp.pages import Pages, is_htmx
from webapp.phone import InvalidNumber, format_international, parse_phone
from webapp.provider import NAMES
from webapp.reports import AttemptFilter, Cursor
from webapp.waits import wait_text

LIMIT_NAMES = {"number": "Calls to this number", "start-ip": "Calls asked from this address",
               "check-ip": "Code checks from this address"}
#: The element an htmx request targets → the template block that fills it.
FRAGMENTS = {"results": "results", "attempts-table": "table", "summary": "summary"}
#: What `?done=` may say after an action: a key, never text from the link.
DONE = {
    "denied": "Denied.",
    "allowed": "Allowed again.",
    "already-denied": "Nothing to do: that was denied already.",
    "not-denied": "Nothing to do: that was not on the deny list.",
}
#: Verification ids are `secrets.token_urlsafe(16)`; anything else is no verification's.
_VERIFICATION_ID = re.compile(r"[A-Za-z0-9_-]{1,32}", re.ASCII)


class AdminPages:
    """Renders the operators' templates; one helper picks page or results fragment."""

    def __init__(self, pages: Pages, *, fail_open: bool = False) -> None:
        self.env = pages.env
        self.env.globals.update(group=reports.group, pretty=format_international, form_token_field=csrf.FIELD)
        self.fail_open = fail_open

    def render(self, request: Request, template: str, *, status_code: int = 200, **context: Any) -> HTMLResponse:
        context.update(
            root=request.scope.get("root_path", ""),
            operator=request.state.operator,
            # Called by the forms that post, so only they put the token in the session.
            form_token=lambda: csrf.token(request.session),
            counters_unavailable=getattr(request.state, "counters_unavailable", False),
            fail_open=self.fail_open,
        )
        context.setdefault("flash", DONE.get(request.query_params.get("done", ""), ""))
        block = FRAGMENTS.get(request.headers.get("HX-Target", "")) if is_htmx(request) else None
        if block is not None:
            html = render_block(self.env, template, block, **context)
        else:
            html = self.env.get_template(template).render(**context)
        response = HTMLResponse(html, status_code=status_code)
        response.headers["Vary"] = "HX-Request, HX-Target"
        return response

    def problem(
        self, request: Request, *, status_code: int, title: str, messages: list[str], back: str = "/admin/"
    ) -> HTMLResponse:
        """A page saying what was wrong and what to do, for a request that can't be served."""
        return self.render(request, "admin_problem.html", status_code=status_code, title=title, messages=messages,
                           back=back)


def _now(request: Request) -> datetime:
    return request.state.clock()


@operator_only
async def attempts_index(request: Request) -> Response:
    """GET /admin/: the attempts table, filtered, paged, summarised."""
    settings = request.app.state.settings
    where, form, errors = filters.read(request.query_params, settings.default_region, _now(request))
    before = after = None
    try:
        if request.query_params.get("before"):
            before = Cursor.parse(request.query_params["before"])
        elif request.query_params.get("after"):
            after = Cursor.parse(request.query_params["after"])
    except ValueError:
        errors.append("That page link is broken; showing the newest attempts.")
    async with request.state.sessions() as session:
        page = await reports.page(session, where, before=before, after=after)
        breaks = await circuit.breaks_in_force(session, _now(request))
        sites = await clients.names(session)
    return request.state.admin_pages.render(
        request,
        "admin_attempts.html",
        status_code=400 if errors else 200,
        page=page,
        breaks=breaks,
        sites=sites,
        now=_now(request),
        form=form,
        errors=errors,
        query=filters.query(form),
        outcomes=reports.OUTCOMES,
        kinds=reports.KINDS,
        providers=NAMES,
        periods=reports.PERIODS,
    )


@operator_only
async def attempts_summary(request: Request) -> Response:
    """GET /admin/summary: counts, conversion, top talkers and the chart for a filter.

    Its own request, loaded by the attempts page once the table is there: over a
    busy day it reads thousands of rows, and the table should not wait for that.
    """
    settings = request.app.state.settings
    where, form, errors = filters.read(request.query_params, settings.default_region, _now(request))
    async with request.state.sessions() as session:
        summary = await reports.summary(session, where, _now(request))
        sites = await clients.names(session)
    return request.state.admin_pages.render(
        request,
        "admin_summary.html",
        status_code=400 if errors else 200,
        summary=summary,
        sites=sites,
        chart=stacked_bars(summary.series, summary.bucket),
        form=form,
        errors=errors,
        query=filters.query(form),
        alert=settings.conversion_alert,
    )


@operator_only
async def attempts_csv(request: Request) -> Response:
    """GET /admin/attempts.csv: exactly the filtered rows, streamed."""
    settings = request.app.state.settings
    where, form, errors = filters.read(request.query_params, settings.default_region, _now(request))
    if errors:
        return request.state.admin_pages.problem(
            request, status_code=400, title="Fix the filters first", messages=errors,
            back="/admin/?" + filters.query(form),
        )
    stamp = _now(request).strftime("%Y%m%d-%H%M%S")
    return StreamingResponse(
        export.rows(request.state.sessions, where),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="attempts-{stamp}.csv"'},
    )


@operator_only
async def number_detail(request: Request) -> Response:
    """GET /admin/numbers/{number}: every attempt and verification of one number, its limits and deny state."""
    try:
        e164 = parse_phone(request.path_params["number"], request.app.state.settings.default_region).e164
    except InvalidNumber:
        return request.state.admin_pages.render(request, "admin_missing.html", status_code=404,
                                                 what="That is not a phone number.")
    async with request.state.sessions() as session:
        page = await reports.page(session, AttemptFilter(number=e164), size=200)
        found = await reports.verifications_for(session, e164)
        entries = await denylist.number_entries(session, e164)
        sites = await clients.names(session)
    limits = await _limit_state(request, request.state.guard.number_limits, "number", e164)
    return request.state.admin_pages.render(
        request, "admin_number.html", number=e164, international=format_international(e164), page=page,
        verifications=found, entries=entries, limits=limits, now=_now(request), sites=sites,
    )


@operator_only
async def ip_detail(request: Request) -> Response:
    """GET /admin/ips/{ip}: every attempt from one address, its limits and deny state."""
    try:
        network = filters.parse_network(request.path_params["ip"])
    except FilterError:
        network = None
    if network is None or network.num_addresses != 1:
        return request.state.admin_pages.render(request, "admin_missing.html", status_code=404,
                                                 what="That is not an IP address.")
    ip = str(network.network_address)
    async with request.state.sessions() as session:
        page = await reports.page(session, AttemptFilter(network=network), size=200)
        entries = await denylist.ip_entries(session, ip)
        sites = await clients.names(session)
    guard = request.state.guard
    key = request.state.limits.client_key(ip)  # the counters' key: an IPv6 address's network
    starts = await _limit_state(request, guard.start_ip_limits, "start-ip", key)
    checks = await _limit_state(request, guard.check_ip_limits, "check-ip", key)
    limits = None if starts is None or checks is None else starts + checks
    return request.state.admin_pages.render(
        request, "admin_ip.html", ip=ip, limit_key=key, page=page, entries=entries, limits=limits, now=_now(request),
        sites=sites,
    )


@operator_only
async def verification_detail(request: Request) -> Response:
    """GET /admin/verifications/{id}: one verification and its attempts."""
    ident = request.path_params["id"]
    verification, sites = None, {}
    if _VERIFICATION_ID.fullmatch(ident):
        async with request.state.sessions() as session:
            verification, rows = await reports.verification_attempts(session, ident)
            sites = await clients.names(session)
    if verification is None:
        return request.state.admin_pages.render(request, "admin_missing.html", status_code=404,
                                                 what="No such verification.")
    return request.state.admin_pages.render(
        request, "admin_verification.html", verification=verification, rows=rows,
        international=format_international(verification.number), now=_now(request), sites=sites,
    )


@operator_only
async def clients_index(request: Request) -> Response:
    """GET /admin/clients: the sites that use the hand-off (`voice2fa client add`), never their secrets."""
    async with request.state.sessions() as session:
        found = await clients.all_clients(session)
    return request.state.admin_pages.render(request, "admin_clients.html", clients=found)


async def _limit_state(request: Request, items: list, *key: str) -> list[dict[str, Any]] | None:
    """The counters of `key` now; None when the limiter's storage does not answer."""
    try:
        found = await request.state.limits.stats(items, *key)
    except LimiterUnavailable:
        request.state.counters_unavailable = True
        return None
    return [
        {
            "label": f"{LIMIT_NAMES[key[0]]}, {item.amount} per {wait_text(item.get_expiry())}",
            "remaining": remaining,
            "amount": item.amount,
            "reset": datetime.fromtimestamp(reset, timezone.utc) if remaining < item.amount else None,
        }
        for item, remaining, reset in found
    ]


def routes() -> list[BaseRoute]:
    return [
        Route("/admin/", attempts_index, methods=["GET"]),
        Route("/admin/summary", attempts_summary, methods=["GET"]),
        Route("/admin/attempts.csv", attempts_csv, methods=["GET"]),
        Route("/admin/numbers/{number}", number_detail, methods=["GET"]),
        Route("/admin/ips/{ip}", ip_detail, methods=["GET"]),
        Route("/admin/verifications/{id}", verification_detail, methods=["GET"]),
        Route("/admin/clients", clients_index, methods=["GET"]),
        *admin_deny.routes(),
    ]
