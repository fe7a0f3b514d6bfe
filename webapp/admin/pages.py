"""Rendering the operators' pages: a whole page, or the fragment an htmx request targets.

With htmx, changing a filter swaps just the results (`HX-Target: results`)
and pushes the URL, so the address bar always holds a shareable link.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from jinja2_fragments import render_block
from starlette.requests import Request
from starlette.responses import HTMLResponse

from webapp import csrf, reports
from webapp.pages import Pages, is_htmx
from webapp.phone import format_international
from webapp.state import app_state

#: The element an htmx request targets → the template block that fills it.
FRAGMENTS = {"results": "results", "attempts-table": "table", "summary": "summary"}
#: What `?done=` may say after an action: a key, never text from the link.
DONE = {
    "denied": "Denied.",
    "allowed": "Allowed again.",
    "already-denied": "Nothing to do: that was denied already.",
    "not-denied": "Nothing to do: that was not on the deny list.",
}


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
        return self.render(
            request, "admin_problem.html", status_code=status_code, title=title, messages=messages, back=back
        )

    def missing(self, request: Request, what: str) -> HTMLResponse:
        """The 404 page for a path that names nothing: not a number, no such verification."""
        return self.render(request, "admin_missing.html", status_code=404, what=what)


def render(request: Request, template: str, *, status_code: int = 200, **context: Any) -> HTMLResponse:
    """`AdminPages.render` of this app."""
    return app_state(request)["admin_pages"].render(request, template, status_code=status_code, **context)


def now(request: Request) -> datetime:
    """The app's clock (a test's fake one in tests)."""
    return app_state(request)["clock"]()
