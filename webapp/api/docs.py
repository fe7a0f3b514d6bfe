"""The JSON API's reference page, for people: made from the OpenAPI document and the outcome table (no CDN)."""

from __future__ import annotations

import re

from markupsafe import Markup, escape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from webapp.api import openapi
from webapp.outcomes import API_OUTCOMES
from webapp.state import app_state

_CODE = re.compile(r"`([^`]+)`")


def _prose(text: str) -> Markup:
    """A description of the document's, for the page: escaped, its `code` spans as <code>."""
    return Markup(_CODE.sub(r"<code>\1</code>", str(escape(text))))  # noqa: S704 - escaped first


def page(request: Request) -> HTMLResponse:
    """GET /api/v1/docs; each error code has its anchor, which is its problem `type`."""
    document = openapi.document()
    operations = [
        {
            "method": method,
            "path": path,
            "summary": _prose(operation["summary"]),
            "responses": [
                (status, _prose(response["description"])) for status, response in operation["responses"].items()
            ],
        }
        for path, item in document["paths"].items()
        for method, operation in item.items()
    ]
    html = (
        app_state(request)["pages"]
        .env.get_template("api_docs.html")
        .render(
            info=document["info"],
            operations=operations,
            outcomes=list(API_OUTCOMES.items()),
            # The app's own root (static files, links), not this mount's /api/v1.
            root=request.scope.get("app_root_path", ""),
        )
    )
    return HTMLResponse(html, headers={"Cache-Control": "public, max-age=300"})
