"""The summary of a filter: `GET /admin/summary`, counts, conversion, top talkers and the chart.

Its own request, loaded by the attempts page once the table is there: over a
busy day it reads thousands of rows, and the table should not wait for that.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from webapp import report_summary
from webapp.admin.attempts import read_filters
from webapp.admin.auth import operator_only
from webapp.admin.chart import stacked_bars
from webapp.admin.pages import now, render
from webapp.oidc import clients
from webapp.settings import Settings
from webapp.state import app_state


@operator_only
async def attempts_summary(request: Request) -> Response:
    """GET /admin/summary: counts, conversion, top talkers and the chart for a filter."""
    settings: Settings = request.app.state.settings
    filters = read_filters(request)
    async with app_state(request)["sessions"]() as session:
        summary = await report_summary.summary(session, filters.where, now(request))
        sites = await clients.names(session)
    chart = stacked_bars(summary.series, summary.bucket)
    return render(
        request,
        "admin_summary.html",
        status_code=filters.status_code,
        summary=summary,
        sites=sites,
        chart=chart,
        alert=settings.conversion_alert,
        **filters.context(),
    )
