"""The attempts table and its CSV: `GET /admin/` and `GET /admin/attempts.csv`.

HTTP only, like the flow's routes: read the filters (`Filters.from_query`),
ask `reports` / `circuit`, render.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from webapp import circuit, reports
from webapp.admin import export
from webapp.admin.auth import operator_only
from webapp.admin.filters import Filters
from webapp.admin.pages import now, render
from webapp.oidc import clients
from webapp.provider import NAMES
from webapp.settings import Settings
from webapp.state import app_state


def read_filters(request: Request, *, paged: bool = False) -> Filters:
    """The filters of this request's query, against the settings' default region and the app's clock."""
    settings: Settings = request.app.state.settings
    return Filters.from_query(request.query_params, settings.default_region, now(request), paged=paged)


@operator_only
async def attempts_index(request: Request) -> Response:
    """GET /admin/: the attempts table, filtered, paged, summarised."""
    filters = read_filters(request, paged=True)
    async with app_state(request)["sessions"]() as session:
        page = await reports.page(session, filters.where, before=filters.before, after=filters.after)
        breaks = await circuit.breaks_in_force(session, now(request))
        sites = await clients.names(session)
    return render(
        request,
        "admin_attempts.html",
        status_code=filters.status_code,
        page=page,
        breaks=breaks,
        sites=sites,
        now=now(request),
        **filters.context(),
        outcomes=reports.OUTCOMES,
        kinds=reports.KINDS,
        providers=NAMES,
        periods=reports.PERIODS,
    )


@operator_only
async def attempts_csv(request: Request) -> Response:
    """GET /admin/attempts.csv: exactly the filtered rows, streamed."""
    filters = read_filters(request)
    if filters.errors:
        return app_state(request)["admin_pages"].problem(
            request,
            status_code=400,
            title="Fix the filters first",
            messages=filters.errors,
            back="/admin/?" + filters.query,
        )
    stamp = now(request).strftime("%Y%m%d-%H%M%S")
    return StreamingResponse(
        export.rows(app_state(request)["sessions"], filters.where),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="attempts-{stamp}.csv"'},
    )
