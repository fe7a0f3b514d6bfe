"""HTTP for the JSON API under /api/v1: authenticate, read the body, call the flow, answer JSON.

Only translation happens here. Every rule is the flow's and the guard's
(`Flow.for_api` binds the client: its verifications are its own, its rows
say via "api", its calls count against LIMIT_API_CALLS_PER_CLIENT), and
every refusal becomes problem details in one place (`problems.problem`).

Who the person is: a create's `client_ip` (validated; absent, the socket
peer, so that a caller that doesn't say shares one per-IP budget among all
its users). A check, a resend and a cancel count under the address their
verification was created for.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from datetime import datetime
from functools import wraps

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from webapp.api import docs, openapi
from webapp.api.body import read_model
from webapp.api.context import Api
from webapp.api.idempotency import HEADER, fingerprint, read_key
from webapp.api.problems import MEDIA_TYPE, ApiRefusal, problem, problem_body
from webapp.api.schemas import CheckCode, CreateVerification, Status, VerificationOut
from webapp.db import STORAGE_ERRORS
from webapp.errors import Refusal
from webapp.flow import Flow
from webapp.outcomes import Outcome
from webapp.progress import Pending
from webapp.state import app_state, ip_of

log = logging.getLogger(__name__)

PREFIX = "/api/v1"
NO_STORE = {"Cache-Control": "no-store"}
#: The ids the flow makes (secrets.token_urlsafe(16)), with room; anything else is no verification of ours.
VERIFICATION_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
#: A check the flow refused with one of these changed (or found) the verification's state: the answer is the object.
STATE_ANSWERS = frozenset({Outcome.WRONG_CODE, Outcome.UNVERIFIED, Outcome.CLOSED})

Handler = Callable[[Request], Awaitable[Response]]


def _api(request: Request) -> Api:
    return app_state(request)["api"]


#: The flow's statuses as the API names them: "unplaced" (the provider placed no call) is failed.
STATUSES: dict[str, Status] = {
    "pending": "pending",
    "verified": "verified",
    "failed": "failed",
    "expired": "expired",
    "cancelled": "cancelled",
    "unplaced": "failed",
}


def status_of(pending: Pending, now: datetime) -> Status:
    """The API's status for a verification as the flow sees it (a pending one past its expiry is expired)."""
    if pending.status == "pending" and now >= pending.expires_at:
        return "expired"
    return STATUSES.get(pending.status, "failed")


def view(pending: Pending, now: datetime) -> dict[str, object]:
    """The verification object, as JSON."""
    status = status_of(pending, now)
    return VerificationOut(
        id=pending.id,
        status=status,
        phone_number=pending.number,
        channel="call",
        attempts_left=pending.attempts_left,
        resend_in=pending.resend_in,
        expires_at=pending.expires_at,
        verified_at=pending.verified_at if status == "verified" else None,
    ).model_dump(mode="json", exclude_none=True)


def endpoint(kind: str) -> Callable[[Handler], Handler]:
    """Wrap a handler: refusals and a database that is away become problem details, never a 500."""

    def wrap(handler: Handler) -> Handler:
        @wraps(handler)
        async def wrapper(request: Request) -> Response:
            try:
                response = await handler(request)
            except ApiRefusal as refusal:
                client_id = getattr(request.state, "api_client", None)
                if client_id is not None:  # an authenticated request's refusal; the auth wrote its own
                    await _log_quietly(request, client_id, kind, refusal.outcome)
                response = problem(refusal)
            except Refusal as refusal:  # the flow's: it wrote its attempts row
                response = problem(refusal)
            except STORAGE_ERRORS as exc:
                log.error(
                    "%s %s: the database did not answer: %s", request.method, request.url.path, type(exc).__name__
                )
                response = problem(ApiRefusal(Outcome.STORAGE_UNAVAILABLE, retry_after=30))
            response.headers.setdefault("Cache-Control", "no-store")
            return response

        return wrapper

    return wrap


async def _log_quietly(request: Request, client_id: str, kind: str, outcome: Outcome) -> None:
    try:
        await _api(request).log_for(client_id).write(kind, outcome, ip_of(request))
    except STORAGE_ERRORS as exc:  # the refusal is answered all the same
        log.error("the attempts row of a refused API request was not written: %s", type(exc).__name__)


async def client_flow(request: Request) -> Flow:
    """Authenticate the caller; the flow bound to it."""
    client = await _api(request).auth.client(request.headers.get("authorization", ""), ip_of(request))
    request.state.api_client = client.id
    return _bound(request)


def _bound(request: Request, language: str | None = None) -> Flow:
    flow = app_state(request)["flow"]
    return flow.for_api(request.state.api_client, language)


async def owned(request: Request, flow: Flow) -> Pending:
    """The path's verification, if this client created it; otherwise not_found, whoever else's it is."""
    verification_id = request.path_params["id"]
    found = await flow.find(verification_id) if VERIFICATION_ID.fullmatch(verification_id) else None
    if found is None or found.api_client is None or found.api_client != request.state.api_client:
        raise ApiRefusal(Outcome.NOT_FOUND, "There is no such verification.")
    return found


@endpoint("start")
async def create_verification(request: Request) -> Response:
    """POST /api/v1/verifications: place a call; 201 with the verification."""
    api = _api(request)
    await client_flow(request)
    client_id: str = request.state.api_client
    key = read_key(request.headers.get(HEADER))
    body, raw = await read_model(request, CreateVerification)
    flow = _bound(request, body.locale)
    ip = body.client_ip or ip_of(request)
    if key is not None:
        replay = await api.keys.claim(client_id, key, fingerprint(raw))
        if replay is not None:
            await api.log_for(client_id).write(
                "start", Outcome.IDEMPOTENT_REPLAY, ip, number=str(replay.body.get("phone_number") or "") or None
            )
            return JSONResponse(
                replay.body,
                status_code=replay.status,
                headers={"Idempotent-Replayed": "true"},
                media_type=MEDIA_TYPE if replay.status >= 400 else None,
            )
    try:
        await flow.admit("start", ip)
        pending = await flow.start(body.phone_number, body.country or api.settings.default_region, ip)
    except Refusal as refusal:
        if key is not None:
            if refusal.outcome == Outcome.NO_VERIFICATION:
                # A call was placed and its verification closed meanwhile: that answer is the key's.
                await api.keys.answer(client_id, key, refusal.status_code, problem_body(refusal))
            else:  # refused before a call was placed: the key is free for a retry
                await api.keys.release(client_id, key)
        raise
    answer = view(pending, api.clock())
    if key is not None:
        await api.keys.answer(client_id, key, 201, answer)
    return JSONResponse(answer, status_code=201, headers={"Location": f"{PREFIX}/verifications/{pending.id}"})


@endpoint("view")
async def get_verification(request: Request) -> Response:
    """GET /api/v1/verifications/{id}."""
    flow = await client_flow(request)
    return JSONResponse(view(await owned(request, flow), _api(request).clock()))


@endpoint("check")
async def check_verification(request: Request) -> Response:
    """POST /api/v1/verifications/{id}/check: 200 with the verification, verified or not."""
    flow = await client_flow(request)
    pending = await owned(request, flow)
    body, _ = await read_model(request, CheckCode)
    await flow.admit("check", pending.ip, pending.id)
    try:
        await flow.confirm(pending.id, body.code, pending.ip)
    except Refusal as refusal:
        if refusal.outcome not in STATE_ANSWERS:
            raise
    after = await flow.find(pending.id)
    assert after is not None, "a verification is never deleted while it is checked"
    return JSONResponse(view(after, _api(request).clock()))


@endpoint("resend")
async def resend_verification(request: Request) -> Response:
    """POST /api/v1/verifications/{id}/resend: a new call, as "Call me again"."""
    flow = await client_flow(request)
    pending = await owned(request, flow)
    await flow.admit("resend", pending.ip, pending.id)
    again = await flow.resend(pending.id, pending.ip)
    return JSONResponse(view(again, _api(request).clock()))


@endpoint("cancel")
async def cancel_verification(request: Request) -> Response:
    """DELETE /api/v1/verifications/{id}: give up on it; 204."""
    flow = await client_flow(request)
    pending = await owned(request, flow)
    await flow.cancel(pending.id, pending.ip)
    return Response(status_code=204)


async def openapi_document(request: Request) -> Response:
    """GET /api/v1/openapi.json: the OpenAPI 3.1 document."""
    return JSONResponse(openapi.document(), headers={"Cache-Control": "public, max-age=300"})


async def reference(request: Request) -> Response:
    """GET /api/v1/docs: the reference page, generated from the same document."""
    return docs.page(request)
