"""The operators' pages: the attempts table, a number's and an IP's story, the deny list.

HTTP only, like routes.py: read the query, ask `reports` / `denylist` /
`circuit`, render. Every handler is `operator_only` (HTTP Basic, no-store).
With htmx, changing a filter swaps just the results (`HX-Target: results`)
and pushes the URL, so the address bar always holds a shareable link.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlencode

from jinja2_fragments import render_block
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from webapp import circuit, denylist, reports
from webapp.chart import stacked_bars
from webapp.guard import wait_text
from webapp.limits import LimiterUnavailable
from webapp.operators import operator_only
from webapp.pages import Pages, is_htmx
from webapp.phone import InvalidNumber, format_international, parse_phone
from webapp.reports import AttemptFilter, Cursor, FilterError
from webapp.routes import BadForm, read_form

LIMIT_NAMES = {"number": "Calls to this number", "start-ip": "Calls asked from this address",
               "check-ip": "Code checks from this address"}
#: The element an htmx request targets → the template block that fills it.
FRAGMENTS = {"results": "results", "attempts-table": "table", "summary": "summary"}
CSV_COLUMNS = ("time_utc", "kind", "number", "raw_input", "region", "ip", "channel", "outcome",
               "verification_id", "provider_ref", "provider_latency_ms")


def _filters(params: QueryParams, default_region: str, now: datetime) -> tuple[AttemptFilter, dict[str, Any], list[str]]:
    """The filter the query asks for, the form's values, and what could not be used."""
    errors: list[str] = []
    form: dict[str, Any] = {
        "number": params.get("number", "")[:40],
        "ip": params.get("ip", "")[:50],
        "outcome": [o for o in params.getlist("outcome") if o in reports.OUTCOMES],
        "kind": [k for k in params.getlist("kind") if k in reports.KINDS],
        "country": params.get("country", "")[:3],
        "period": params.get("period", reports.DEFAULT_PERIOD),
        "since": params.get("since", "")[:30],
        "until": params.get("until", "")[:30],
    }
    if len(form["outcome"]) != len(params.getlist("outcome")):
        errors.append("Unknown outcomes were left out.")
    if form["period"] not in reports.PERIODS:
        errors.append(f"“{form['period'][:20]}” is not a period; showing the last 24 hours.")
        form["period"] = reports.DEFAULT_PERIOD
    fields: dict[str, Any] = {"outcomes": tuple(form["outcome"]), "kinds": tuple(form["kind"])}
    number = form["number"].strip()
    if number:
        try:
            if number.endswith("*"):
                fields["number_prefix"] = denylist.parse_entry(number).value
            else:
                fields["number"] = parse_phone(number, default_region).e164
        except (InvalidNumber, ValueError) as exc:
            errors.append(f"Number: {getattr(exc, 'message', None) or exc}")
    for name, parse, target in (
        ("ip", reports.parse_network, "network"),
        ("country", reports.check_country, "country"),
        ("since", lambda text: reports.parse_time(text, "from"), "since"),
        ("until", lambda text: reports.parse_time(text, "until"), "until"),
    ):
        if form[name].strip():
            try:
                fields[target] = parse(form[name])
            except FilterError as exc:
                errors.append(str(exc))
    if "since" not in fields and "until" not in fields:
        span = reports.PERIODS[form["period"]]
        fields["since"] = now - span if span else None
    return AttemptFilter(**fields), form, errors


def _query(form: dict[str, Any], **extra: str) -> str:
    pairs = [(key, value) for key, values in form.items() for value in (values if isinstance(values, list) else [values]) if value]
    pairs += [(key, value) for key, value in extra.items() if value]
    return urlencode(pairs)


class AdminPages:
    """Renders the operators' templates; one helper picks page or results fragment."""

    def __init__(self, pages: Pages) -> None:
        self.env = pages.env
        self.env.globals.update(group=reports.group, pretty=format_international)

    def render(self, request: Request, template: str, *, status_code: int = 200, **context: Any) -> HTMLResponse:
        context.update(root=request.scope.get("root_path", ""), operator=request.state.operator)
        context.setdefault("flash", request.query_params.get("done", "")[:200])
        block = FRAGMENTS.get(request.headers.get("HX-Target", "")) if is_htmx(request) else None
        if block is not None:
            html = render_block(self.env, template, block, **context)
        else:
            html = self.env.get_template(template).render(**context)
        response = HTMLResponse(html, status_code=status_code)
        response.headers["Vary"] = "HX-Request, HX-Target"
        return response


def _now(request: Request) -> datetime:
    return request.state.clock()


@operator_only
async def attempts_index(request: Request) -> Response:
    """GET /admin/: the attempts table, filtered, paged, summarised."""
    settings = request.app.state.settings
    where, form, errors = _filters(request.query_params, settings.default_region, _now(request))
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
    return request.state.admin_pages.render(
        request,
        "admin_attempts.html",
        status_code=400 if errors else 200,
        page=page,
        breaks=breaks,
        now=_now(request),
        form=form,
        errors=errors,
        query=_query(form),
        outcomes=reports.OUTCOMES,
        kinds=reports.KINDS,
        periods=reports.PERIODS,
    )


@operator_only
async def attempts_summary(request: Request) -> Response:
    """GET /admin/summary: counts, conversion, top talkers and the chart for a filter.

    Its own request, loaded by the attempts page once the table is there: over a
    busy day it reads thousands of rows, and the table should not wait for that.
    """
    settings = request.app.state.settings
    where, form, errors = _filters(request.query_params, settings.default_region, _now(request))
    async with request.state.sessions() as session:
        summary = await reports.summary(session, where, _now(request))
    return request.state.admin_pages.render(
        request,
        "admin_summary.html",
        status_code=400 if errors else 200,
        summary=summary,
        chart=stacked_bars(summary.series, summary.bucket),
        form=form,
        errors=errors,
        query=_query(form),
        alert=settings.conversion_alert,
    )


@operator_only
async def attempts_csv(request: Request) -> Response:
    """GET /admin/attempts.csv: exactly the filtered rows, streamed."""
    settings = request.app.state.settings
    where, _form, errors = _filters(request.query_params, settings.default_region, _now(request))
    if errors:
        return HTMLResponse("Fix the filters first: " + " ".join(errors), status_code=400)
    sessions = request.state.sessions

    async def rows() -> AsyncIterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(CSV_COLUMNS)
        async with sessions() as session:
            count = 0
            async for row in reports.stream(session, where):
                writer.writerow([_cell(value) for value in (
                    row.created_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), row.kind, row.number, row.raw_input, row.region,
                    row.ip, row.channel, row.outcome, row.verification_id, row.provider_ref, row.provider_latency_ms,
                )])
                count += 1
                if count % 500 == 0:
                    yield buffer.getvalue()
                    buffer.seek(0)
                    buffer.truncate()
        yield buffer.getvalue()

    stamp = _now(request).strftime("%Y%m%d-%H%M%S")
    return StreamingResponse(
        rows(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="attempts-{stamp}.csv"'},
    )


def _cell(value: object) -> str:
    """A CSV cell a spreadsheet will not run: leading = + - @ (and tab, CR) are quoted away."""
    if value is None:
        return ""
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


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
    limits = await _limit_state(request, request.state.guard.number_limits, "number", e164)
    return request.state.admin_pages.render(
        request, "admin_number.html", number=e164, international=format_international(e164), page=page,
        verifications=found, entries=entries, limits=limits, now=_now(request),
    )


@operator_only
async def ip_detail(request: Request) -> Response:
    """GET /admin/ips/{ip}: every attempt from one address, its limits and deny state."""
    try:
        network = reports.parse_network(request.path_params["ip"])
    except FilterError:
        network = None
    if network is None or network.num_addresses != 1:
        return request.state.admin_pages.render(request, "admin_missing.html", status_code=404,
                                                 what="That is not an IP address.")
    ip = str(network.network_address)
    async with request.state.sessions() as session:
        page = await reports.page(session, AttemptFilter(network=network), size=200)
        entries = await denylist.ip_entries(session, ip)
    guard = request.state.guard
    key = request.state.limits.client_key(ip)  # the counters' key: an IPv6 address's network
    limits = await _limit_state(request, guard.start_ip_limits, "start-ip", key)
    limits += await _limit_state(request, guard.check_ip_limits, "check-ip", key)
    return request.state.admin_pages.render(
        request, "admin_ip.html", ip=ip, limit_key=key, page=page, entries=entries, limits=limits, now=_now(request),
    )


@operator_only
async def verification_detail(request: Request) -> Response:
    """GET /admin/verifications/{id}: one verification and its attempts."""
    async with request.state.sessions() as session:
        verification, rows = await reports.verification_attempts(session, request.path_params["id"][:64])
    if verification is None:
        return request.state.admin_pages.render(request, "admin_missing.html", status_code=404,
                                                 what="No such verification.")
    return request.state.admin_pages.render(
        request, "admin_verification.html", verification=verification, rows=rows,
        international=format_international(verification.number), now=_now(request),
    )


async def _limit_state(request: Request, items: list, *key: str) -> list[dict[str, Any]]:
    try:
        found = await request.state.limits.stats(items, *key)
    except LimiterUnavailable:
        return [{"name": "limiter", "remaining": None, "reset": None, "label": "the limiter does not answer"}]
    return [
        {
            "label": f"{LIMIT_NAMES[key[0]]}, {item.amount} per {wait_text(item.get_expiry())}",
            "remaining": remaining,
            "amount": item.amount,
            "reset": datetime.fromtimestamp(reset, timezone.utc) if remaining < item.amount else None,
        }
        for item, remaining, reset in found
    ]


@operator_only
async def deny_list(request: Request) -> Response:
    """GET /admin/deny-list: the entries, the operators' recent actions, the circuit breaks."""
    async with request.state.sessions() as session:
        entries = await denylist.entries(session)
        actions = await denylist.recent_actions(session)
        breaks = await circuit.recent_breaks(session)
    return request.state.admin_pages.render(
        request, "admin_denylist.html", entries=entries, actions=actions, breaks=breaks, now=_now(request),
    )


@operator_only
async def deny_confirm(request: Request) -> Response:
    """GET /admin/deny?action=deny|allow&value=…: ask before acting."""
    action = request.query_params.get("action", "deny")
    value = request.query_params.get("value", "")[:100]
    try:
        entry = denylist.parse_entry(value)
        error = ""
    except ValueError as exc:
        entry, error = None, str(exc)
    if action not in ("deny", "allow"):
        entry, error = None, "The action is deny or allow."
    return request.state.admin_pages.render(
        request, "admin_deny.html", status_code=400 if error else 200, action=action, value=value, entry=entry,
        error=error, back=_back(request.query_params.get("back", "")),
    )


@operator_only
async def deny_apply(request: Request) -> Response:
    """POST /admin/deny: deny or allow again, and record who did it."""
    try:
        form = await read_form(request)
    except BadForm as exc:
        return HTMLResponse(exc.message, status_code=exc.status_code)
    action, value, reason = form.get("action", ""), form.get("value", "")[:100], " ".join(form.get("reason", "").split())
    back = _back(form.get("back", ""))
    try:
        entry = denylist.parse_entry(value)
    except ValueError as exc:
        return request.state.admin_pages.render(request, "admin_deny.html", status_code=422, action=action, value=value,
                                                 entry=None, error=str(exc), back=back)
    if action not in ("deny", "allow"):
        return request.state.admin_pages.render(request, "admin_deny.html", status_code=422, action="deny", value=value,
                                                 entry=entry, error="The action is deny or allow.", back=back)
    now = _now(request)
    async with request.state.sessions() as session:
        if action == "deny":
            changed = await denylist.add(session, entry, reason=reason, by="admin:" + request.state.operator, now=now)
        else:
            changed = await denylist.remove(session, entry)
        if changed:
            await denylist.record(session, operator=request.state.operator, action=action, entry=entry,
                                  reason=reason, now=now)
    verb = "Denied" if action == "deny" else "Allowed again"
    done = f"{verb}: {entry.kind} {entry.value}." if changed else f"Nothing to do: {entry.kind} {entry.value} was already {'denied' if action == 'deny' else 'allowed'}."
    separator = "&" if "?" in back else "?"
    return RedirectResponse(f"{back}{separator}{urlencode({'done': done})}", status_code=303)


def _back(path: str) -> str:
    """Where to return after an action: an operators' page of this site, or the deny list."""
    if path.startswith("/admin/") and "//" not in path and "\\" not in path:
        return path[:300]
    return "/admin/deny-list"


def routes() -> list[BaseRoute]:
    return [
        Route("/admin/", attempts_index, methods=["GET"]),
        Route("/admin/summary", attempts_summary, methods=["GET"]),
        Route("/admin/attempts.csv", attempts_csv, methods=["GET"]),
        Route("/admin/numbers/{number}", number_detail, methods=["GET"]),
        Route("/admin/ips/{ip}", ip_detail, methods=["GET"]),
        Route("/admin/verifications/{id}", verification_detail, methods=["GET"]),
        Route("/admin/deny-list", deny_list, methods=["GET"]),
        Route("/admin/deny", deny_confirm, methods=["GET"]),
        Route("/admin/deny", deny_apply, methods=["POST"]),
    ]
