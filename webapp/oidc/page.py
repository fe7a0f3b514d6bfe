"""The verification page during a hand-off: the request the session carries, and the way back to the site.

The authorization endpoint keeps the request's opaque id in the session
(`SESSION_KEY`); each of the page's requests loads it once (`begin`), so
that the page can say whom the number is for, the flow's attempts rows name
the site, and a whole page's `form-action` names the site's origin
(`webapp.pages`): its forms (the code, "Cancel and go back") are answered by
a 303 to the site, and Chromium holds every hop of a form's answer to the
policy of the page that posted it, with JavaScript or without. htmx gets
`HX-Redirect`, a plain navigation, instead.

A form posted from a page rendered before this hand-off (another tab) says
so by its missing or different `handoff` tag: it gets the page again, whose
own button ("Continue to …", "Cancel and go back") can leave.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from webapp import page_session
from webapp.errors import Refusal
from webapp.flow import Flow
from webapp.forms import read_logged
from webapp.oidc import completion
from webapp.oidc.completion import HandoffError
from webapp.oidc.handoff import KIND, Handoff, load
from webapp.oidc.provider import issuer_of, served
from webapp.pages import Pages, is_htmx
from webapp.progress import Verified
from webapp.state import app_state, ip_of

SESSION_KEY = page_session.AUTHORIZATION_REQUEST
#: The form field naming the hand-off a page was rendered for (`Handoff.tag`).
TAG_FIELD = "handoff"
NO_STORE = {"Cache-Control": "no-store"}

TIMED_OUT = "This sign-in has timed out. Choose “Cancel and go back” to return to {name}, and start again there."
ENDED = "That sign-in has ended. To sign in to the site you came from, go back there and start again."


def _pages(request: Request) -> Pages:
    return app_state(request)["pages"]


def _home(request: Request) -> Response:
    return RedirectResponse(request.scope.get("root_path", "") + "/", status_code=303)


async def begin(request: Request) -> tuple[Flow, Handoff | None]:
    """The flow for this request and the hand-off the session carries (None: the standalone page).

    During a hand-off the flow's attempts rows name the site. The hand-off is
    kept on the request for `webapp.pages`; an id that names no request any
    more (pruned, or its client removed) is dropped from the session.
    """
    provider = app_state(request)["oidc"]
    request_id = page_session.get(request.session, SESSION_KEY)
    handoff = None
    if provider is not None and request_id is not None:
        handoff = await load(provider, request_id, provider.clock())
        if handoff is None:
            request.session.pop(SESSION_KEY, None)
    request.state.handoff = handoff
    return app_state(request)["flow"].for_client(handoff.client_id if handoff else None), handoff


def end(request: Request) -> None:
    """The page is the standalone page again."""
    request.session.pop(SESSION_KEY, None)
    request.state.handoff = None


def back_to_site(request: Request, url: str) -> Response:
    """Send the browser to the site: `HX-Redirect` for htmx, a 303 otherwise; the hand-off is over."""
    end(request)
    request.session.pop(page_session.RESULT, None)
    if is_htmx(request):
        return Response(status_code=200, headers={"HX-Redirect": url, **NO_STORE})
    return RedirectResponse(url, status_code=303, headers=NO_STORE)


async def hand_back(request: Request, handoff: Handoff, verified: Verified, tag: str | None) -> Response | None:
    """A verification this session completed: the code goes back to the site, or the page says why not.

    None: the form was posted from a page not rendered for this hand-off
    (whose CSP would stop a 303 to the site); the caller shows the result as
    usual, and the page offers "Continue to …".
    """
    if not is_htmx(request) and tag != handoff.tag:
        return None
    try:
        url = await completion.complete(
            served(request),
            handoff.request_id,
            number=verified.number,
            verified_at=verified.verified_at,
            issuer=issuer_of(request),
            ip=ip_of(request),
        )
    except HandoffError as error:
        request.session.pop(page_session.RESULT, None)
        reloaded = await load(served(request), handoff.request_id, served(request).clock())
        if reloaded is None or reloaded.state == "finished":
            end(request)
        else:
            request.state.handoff = reloaded
        return _pages(request).render(request, "result", status_code=409, message=error.message, verified=verified)
    return back_to_site(request, url)


async def _posted(request: Request) -> tuple[Flow, Handoff | None, dict[str, str]] | Response:
    """A hand-off POST's start: `begin`, then its form (an unreadable one logged, and the page says so)."""
    flow, handoff = await begin(request)
    try:
        form = await read_logged(request, flow.attempts, KIND, ip_of(request))
    except Refusal as refusal:
        return _pages(request).render(request, "phone", status_code=refusal.status_code, message=refusal.message)
    return flow, handoff, form


async def handoff_continue(request: Request) -> Response:
    """POST /oidc/continue: "Continue to …", for a verification whose form could not go back to the site."""
    posted = await _posted(request)
    if isinstance(posted, Response):
        return posted
    flow, handoff, form = posted
    verified = await flow.result(page_session.get(request.session, page_session.RESULT))
    if handoff is None or not handoff.open or verified is None:
        return _home(request)  # the page says what there is to do
    return await hand_back(request, handoff, verified, form.get(TAG_FIELD)) or _home(request)


async def handoff_cancel(request: Request) -> Response:
    """POST /oidc/cancel: "Cancel and go back": the site hears `access_denied`, the call in progress ends."""
    posted = await _posted(request)
    if isinstance(posted, Response):
        return posted
    flow, handoff, form = posted
    if handoff is not None and handoff.cancellable and not is_htmx(request) and form.get(TAG_FIELD) != handoff.tag:
        return _home(request)  # an older page's button: this hand-off's page has its own
    try:
        if handoff is None:
            raise HandoffError(ENDED)
        url = await completion.cancel(served(request), handoff.request_id, issuer=issuer_of(request), ip=ip_of(request))
    except HandoffError as error:
        end(request)
        return _pages(request).render(request, "phone", status_code=409, message=error.message)
    try:
        await flow.cancel(page_session.get(request.session, page_session.VERIFICATION), ip_of(request))
    except Refusal:
        pass  # another worker has that call in hand; unclaimed, it simply expires
    request.session.pop(page_session.VERIFICATION, None)
    return back_to_site(request, url)


def routes() -> list[BaseRoute]:
    """The page's own hand-off routes (the provider's endpoints are `webapp.oidc.endpoints`)."""
    return [
        Route("/oidc/cancel", handoff_cancel, methods=["POST"]),
        Route("/oidc/continue", handoff_continue, methods=["POST"]),
    ]
