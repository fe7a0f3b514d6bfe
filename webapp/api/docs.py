"""The JSON API's reference page, for people: made from the OpenAPI document and the outcome table (no CDN)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import HTMLResponse

from webapp.api import openapi
from webapp.outcomes import API_OUTCOMES


def page(request: Request) -> HTMLResponse:
    """GET /api/v1/docs; each error code has its anchor, which is its problem `type`."""
    document = openapi.document()
    operations = [
        {
            "method": method,
            "path": path,
            "summary": operation["summary"],
            "responses": [(status, response["description"]) for status, response in operation["responses"].items()],
        }
        for path, item in document["paths"].items()
        for method, operation in item.items()
    ]
    html = request.state.pages.env.get_template("api_docs.html").render(
        info=document["info"],
        operations=operations,
        outcomes=list(API_OUTCOMES.items()),
        root=request.scope.get("root_path", ""),
    )
    return HTMLResponse(html, headers={"Cache-Control": "public, max-age=300"})
