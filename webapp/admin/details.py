"""One thing's story: a number's, an IP's, a verification's; and the hand-off's sites.

Each page shows the attempts and, for a number or an IP, its counters now
and its deny-list entries. A path that names nothing is a 404 page.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from webapp import denylist, reports
from webapp.admin.auth import operator_only
from webapp.admin.filters import FilterError, parse_network
from webapp.admin.pages import now, render
from webapp.guard import CHECK_IP, NUMBER, START_IP
from webapp.limits import Counter, LimiterUnavailable
from webapp.models import Attempt, DenyEntry, Verification
from webapp.oidc import clients
from webapp.phone import InvalidNumber, format_international, parse_phone
from webapp.reports import AttemptFilter, Page
from webapp.settings import Settings
from webapp.state import app_state
from webapp.waits import wait_text

#: The guard's counter keys an operator sees, and what each counts.
LIMIT_NAMES = {
    NUMBER: "Calls to this number",
    START_IP: "Calls asked from this address",
    CHECK_IP: "Code checks from this address",
}
#: Verification ids are `secrets.token_urlsafe(16)`; anything else is no verification's.
_VERIFICATION_ID = re.compile(r"[A-Za-z0-9_-]{1,32}", re.ASCII)


@operator_only
async def number_detail(request: Request) -> Response:
    """GET /admin/numbers/{number}: every attempt and verification of one number, its limits and deny state."""
    settings: Settings = request.app.state.settings
    state = app_state(request)
    try:
        e164 = parse_phone(request.path_params["number"], settings.default_region).e164
    except InvalidNumber:
        return state["admin_pages"].missing(request, "That is not a phone number.")
    async with state["sessions"]() as session:
        page = await reports.page(session, AttemptFilter(number=e164), size=200)
        found = await reports.verifications_for(session, e164)
        entries = await denylist.number_entries(session, e164)
        sites = await clients.names(session)
    limits = await _limit_state(request, state["guard"].number_counter(e164))
    return _story(
        request,
        "admin_number.html",
        page,
        entries,
        limits,
        sites,
        number=e164,
        international=format_international(e164),
        verifications=found,
    )


@operator_only
async def ip_detail(request: Request) -> Response:
    """GET /admin/ips/{ip}: every attempt from one address, its limits and deny state."""
    state = app_state(request)
    try:
        network = parse_network(request.path_params["ip"])
    except FilterError:
        network = None
    if network is None or network.num_addresses != 1:
        return state["admin_pages"].missing(request, "That is not an IP address.")
    ip = str(network.network_address)
    async with state["sessions"]() as session:
        page = await reports.page(session, AttemptFilter(network=network), size=200)
        entries = await denylist.ip_entries(session, ip)
        sites = await clients.names(session)
    guard = state["guard"]
    key = state["limits"].client_key(ip)  # the counters' key: an IPv6 address's network
    starts = await _limit_state(request, guard.start_ip_counter(key))
    checks = await _limit_state(request, guard.check_ip_counter(key))
    limits = None if starts is None or checks is None else starts + checks
    return _story(request, "admin_ip.html", page, entries, limits, sites, ip=ip, limit_key=key)


@operator_only
async def verification_detail(request: Request) -> Response:
    """GET /admin/verifications/{id}: one verification and its attempts."""
    state = app_state(request)
    ident = request.path_params["id"]
    verification: Verification | None = None
    rows: list[Attempt] = []
    sites: dict[str, str] = {}
    if _VERIFICATION_ID.fullmatch(ident):
        async with state["sessions"]() as session:
            verification, rows = await reports.verification_attempts(session, ident)
            sites = await clients.names(session)
    if verification is None:
        return state["admin_pages"].missing(request, "No such verification.")
    return render(
        request,
        "admin_verification.html",
        verification=verification,
        rows=rows,
        international=format_international(verification.number),
        now=now(request),
        sites=sites,
    )


@operator_only
async def clients_index(request: Request) -> Response:
    """GET /admin/clients: the sites that use the hand-off (`voice2fa client add`), never their secrets."""
    async with app_state(request)["sessions"]() as session:
        found = await clients.all_clients(session)
    return render(request, "admin_clients.html", clients=found)


def _story(
    request: Request,
    template: str,
    page: Page,
    entries: list[DenyEntry],
    limits: list[dict[str, Any]] | None,
    sites: dict[str, str],
    **about: Any,
) -> Response:
    """A number's or an IP's page: its attempts, its deny-list entries and its counters now."""
    return render(request, template, page=page, entries=entries, limits=limits, now=now(request), sites=sites, **about)


async def _limit_state(request: Request, counter: Counter) -> list[dict[str, Any]] | None:
    """What the guard's `counter` holds now; None when the limiter's storage does not answer."""
    try:
        found = await app_state(request)["limits"].stats(counter.items, *counter.key)
    except LimiterUnavailable:
        request.state.counters_unavailable = True
        return None
    return [
        {
            "label": f"{LIMIT_NAMES[counter.key[0]]}, {item.amount} per {wait_text(item.get_expiry())}",
            "remaining": remaining,
            "amount": item.amount,
            "reset": datetime.fromtimestamp(reset, UTC) if remaining < item.amount else None,
        }
        for item, remaining, reset in found
    ]
