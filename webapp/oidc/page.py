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
from webapp.oidc import authorize
from webapp.oidc.authorize import KIND, HandoffError
from webapp.oidc.handoff import Handoff, load
from webapp.oidc.provider import Provider
from webapp.pages import is_htmx
from webapp.progress import Verified
from webapp.state import app_state

SESSION_KEY = page_session.AUTHORIZATION_REQUEST
#: The form field naming the hand-off a page was rendered for (`Handoff.tag`).
TAG_FIELD = "handoff"
NO_STORE = {"Cache-Control": "no-store"}

TIMED_OUT = "This sign-in has timed out. Choose “Cancel and go back” to return to {name}, and start again there."
ENDED = "That sign-in has ended. To sign in to the site you came from, go back there and start again."


def _provider(request: Request) -> Provider:
    provider = app_state(request)["oidc"]
    assert provider is not None, "a hand-off is only loaded when the provider is served"
    return provider


def _issuer(request: Request) -> str:
    return _provider(request).issuer(str(request.base_url))


def _ip(request: Request) -> str:
    return app_state(request)["client_ip"](request.scope)


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
        url = await authorize.complete(
            _provider(request),
            handoff.request_id,
            number=verified.number,
            verified_at=verified.verified_at,
            issuer=_issuer(request),
            ip=_ip(request),
        )
    except HandoffError as error:
        request.session.pop(page_session.RESULT, None)
        reloaded = await load(_provider(request), handoff.request_id, _provider(request).clock())
        if reloaded is None or reloaded.state == "finished":
            end(request)
        else:
            request.state.handoff = reloaded
        return request.state.pages.render(request, "result", status_code=409, message=error.message, verified=verified)
    return back_to_site(request, url)


async def handoff_continue(request: Request) -> Response:
    """POST /oidc/continue: "Continue to …", for a verification whose form could not go back to the site."""
    flow, handoff = await begin(request)
    try:
        form = await read_logged(request, flow.attempts, KIND, _ip(request))
    except Refusal as refusal:
        return request.state.pages.render(request, "phone", status_code=refusal.status_code, message=refusal.message)
    verified = await flow.result(page_session.get(request.session, page_session.RESULT))
    if handoff is None or not handoff.open or verified is None:
        return _home(request)  # the page says what there is to do
    return await hand_back(request, handoff, verified, form.get(TAG_FIELD)) or _home(request)


async def handoff_cancel(request: Request) -> Response:
    """POST /oidc/cancel: "Cancel and go back": the site hears `access_denied`, the call in progress ends."""
    flow, handoff = await begin(request)
    try:
        form = await read_logged(request, flow.attempts, KIND, _ip(request))
    except Refusal as refusal:
        return request.state.pages.render(request, "phone", status_code=refusal.status_code, message=refusal.message)
    if handoff is not None and handoff.cancellable and not is_htmx(request) and form.get(TAG_FIELD) != handoff.tag:
        return _home(request)  # an older page's button: this hand-off's page has its own
    try:
        if handoff is None:
            raise HandoffError(ENDED)
        url = await authorize.cancel(_provider(request), handoff.request_id, issuer=_issuer(request), ip=_ip(request))
    except HandoffError as error:
        end(request)
        return request.state.pages.render(request, "phone", status_code=409, message=error.message)
    try:
        await flow.cancel(page_session.get(request.session, page_session.VERIFICATION), _ip(request))
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
