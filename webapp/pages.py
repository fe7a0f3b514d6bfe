"""Rendering: a whole page, or for an htmx request only the fragment that swaps.

The page template's steps are blocks (`phone_form`, `code_form`, `result`);
`Pages.render` is the one place that decides page vs fragment, from the
`HX-Request` header, so handlers never think about element ids.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import jinja2
from jinja2_fragments import render_block
from starlette.requests import Request
from starlette.responses import HTMLResponse

from webapp.headers import policy
from webapp.phone import CountryOptions, format_international
from webapp.resources import STATIC, TEMPLATES

#: How the sandbox phone labels a call that is no longer simply "sent".
CALL_STATUS = {"verified": "verified", "failed": "call failed", "expired": "expired", "deleted": "cancelled"}

STEP_BLOCKS = {"phone": "phone_form", "code": "code_form", "result": "result"}


def htmx_file() -> str:
    """The pinned htmx build under webapp/static (its version is in the name)."""
    return max(p.name for p in STATIC.glob("htmx-*.min.js"))


class Pages:
    """The Jinja2 environment and the page-or-fragment decision."""

    def __init__(
        self,
        countries: CountryOptions,
        default_region: str,
        *,
        sandbox_calls: Callable[[], list[dict[str, Any]]] | None = None,
        auto_reload: bool = False,
    ) -> None:
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(TEMPLATES),
            # Looking for changed files costs a stat per template per render: development only (TEMPLATES_RELOAD).
            auto_reload=auto_reload,
            autoescape=True,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.globals.update(htmx_file=htmx_file(), sandbox=sandbox_calls is not None, CALL_STATUS=CALL_STATUS)
        self.sandbox_calls = sandbox_calls
        self.countries = countries
        self.default_region = default_region

    def render(
        self,
        request: Request,
        step: str,
        *,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        **context: Any,
    ) -> HTMLResponse:
        """The page showing `step`, or just its block when htmx asked.

        In sandbox mode a whole page has the phone panel: with the `calls` the
        handler looked up for this session, or, given none, a panel that loads
        them itself. During a hand-off (`webapp.oidc.page.current` found one)
        the page says for whom, and a whole page lets its forms be answered by
        a redirect to that site.
        """
        handoff = getattr(request.state, "handoff", None)
        context.setdefault("handoff", handoff)
        region = context.pop("region", None) or self.default_region
        context.setdefault("message", "")
        context.setdefault("message_kind", "error" if status_code >= 400 else "ok" if step == "result" else "info")
        context.update(
            step=step,
            root=request.scope.get("root_path", ""),
            country_options=self.countries.html(region),
        )
        if is_htmx(request):
            html = render_block(self.env, "page.html", STEP_BLOCKS[step], **context)
            html += render_block(self.env, "page.html", "status_oob", **context)
        else:
            context.setdefault("calls", None)
            html = self.env.get_template("page.html").render(**context)
        response = HTMLResponse(html, status_code=status_code, headers=dict(headers or {}))
        response.headers["Vary"] = "HX-Request"
        if not is_htmx(request) and handoff is not None and handoff.cancellable and handoff.redirect_origin:
            response.headers["Content-Security-Policy"] = policy([handoff.redirect_origin])
        if self.sandbox_calls is not None and is_htmx(request):
            response.headers["HX-Trigger"] = "verify-changed"  # the sandbox phone panel refreshes
        return response

    def status_only(
        self, request: Request, message: str, *, status_code: int, headers: Mapping[str, str] | None = None
    ) -> HTMLResponse:
        """For htmx: a new status message and nothing else swapped (`HX-Reswap: none`)."""
        html = render_block(
            self.env, "page.html", "status_oob", message=message, message_kind="error" if status_code >= 400 else "info"
        )
        response = HTMLResponse(html, status_code=status_code, headers={**(headers or {}), "HX-Reswap": "none"})
        response.headers["Vary"] = "HX-Request"
        return response

    def block(self, request: Request, template: str, block: str, **context: Any) -> HTMLResponse:
        """One block of a template alone (e.g. the sandbox phone's call list)."""
        context.setdefault("root", request.scope.get("root_path", ""))
        return HTMLResponse(render_block(self.env, template, block, **context))

    def placed(self, refs: frozenset[str]) -> list[dict[str, Any]]:
        """The sandbox's calls with these provider ids, newest first, as `/_sandbox/calls` lists them."""
        assert self.sandbox_calls is not None
        return [call for call in self.sandbox_calls() if call["id"] in refs]

    def calls(self, refs: frozenset[str], limit: int = 10) -> list[dict[str, Any]]:
        """The sandbox's newest calls with these provider ids, shaped for the phone panel."""
        return [
            {
                **call,
                "international": format_international("+" + call["recipient"]),
                "time": datetime.fromisoformat(call["createdDatetime"]).strftime("%H:%M:%S"),
            }
            for call in self.placed(refs)[:limit]
        ]


def is_htmx(request: Request) -> bool:
    # A history-restore request wants the whole page even though htmx sent it.
    return request.headers.get("HX-Request") == "true" and request.headers.get("HX-History-Restore-Request") != "true"
