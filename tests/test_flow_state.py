"""One verification, one state machine: finished means finished, and a code answers only for its own call."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import select, update

from tests.support import FakeClock, attempts, call_me, spoken_code, verifications
from webapp.app import create_app
from webapp.db import create_engine, create_sessionmaker
from webapp.flow import Flow
from webapp.guard import Guard
from webapp.limits import RateLimits
from webapp.models import Verification
from webapp.outbox import Outbox
from webapp.provider.failover import Providers
from webapp.provider.sandbox import SandboxState, create_sandbox_app

NUMBER = "+31612345678"


# -- a finished verification is not a fresh proof ------------------------------------------


@pytest.mark.parametrize("code", ["000000", "abc", "", "the right one"])
async def test_a_code_posted_with_an_old_cookie_after_success_is_a_409_result_not_a_verification(
    client_for, app: object, db, code: str
) -> None:
    async with client_for() as person:
        await call_me(person)
        old_cookie = person.cookies["voice2fa_session"]
        right = spoken_code(app)
        await person.post("/confirm", data={"code": right})
    [before] = await verifications(db)
    [sandboxed] = app.state.sandbox.verifications.values()  # type: ignore[attr-defined]
    checks_seen = sandboxed.attempts
    async with client_for("198.51.100.9") as replayer:
        replayer.cookies.set("voice2fa_session", old_cookie)
        response = await replayer.post("/confirm", data={"code": right if code == "the right one" else code})
    assert response.status_code == 409
    assert "+31 6 12345678</strong> is confirmed" in response.text
    assert "already verified" in response.text
    assert [a.outcome for a in await attempts(db)] == ["sent", "verified", "replayed"]
    [after] = await verifications(db)
    assert after.verified_at == before.verified_at, "the replay does not move the time it was verified"
    assert sandboxed.attempts == checks_seen, "the provider is not asked about a finished verification"


async def test_htmx_gets_the_result_fragment_with_409_for_a_code_after_success(
    htmx: httpx.AsyncClient, app: object, db
) -> None:
    await call_me(htmx)
    code = spoken_code(app)
    cookie = htmx.cookies["voice2fa_session"]
    await htmx.post("/confirm", data={"code": code})
    htmx.cookies.set("voice2fa_session", cookie)
    response = await htmx.post("/confirm", data={"code": code})
    assert response.status_code == 409
    assert "<html" not in response.text and "is confirmed" in response.text
    assert [a.outcome for a in await attempts(db)] == ["sent", "verified", "replayed"]


# -- a check answers only for the call it was typed against -----------------------------------


async def test_a_code_typed_for_a_call_that_was_replaced_is_not_checked(
    htmx: httpx.AsyncClient, app: object, clock: FakeClock, db
) -> None:
    await call_me(htmx)
    first_code = spoken_code(app)
    clock.advance(31)
    await htmx.post("/resend")
    [_, _first_call] = app.state.sandbox.verifications.values()  # type: ignore[attr-defined]
    response = await htmx.post("/confirm", data={"code": first_code, "call": "1"})
    assert response.status_code == 409
    assert "A new call was placed since. Type the code from the newest call." in response.text
    assert 'name="call" value="2"' in response.text, "the form now carries the newest call"
    assert [a.outcome for a in await attempts(db)] == ["sent", "sent", "superseded"]
    [verification] = await verifications(db)
    assert (verification.status, verification.code_attempts) == ("pending", 0)
    response = await htmx.post("/confirm", data={"code": spoken_code(app), "call": "2"})
    assert response.status_code == 200 and "is verified" in response.text


async def test_the_code_form_says_which_call_it_is_for(client: httpx.AsyncClient) -> None:
    await call_me(client)
    page = await client.get("/")
    assert '<input type="hidden" name="call" value="1">' in page.text


# -- a check and a resend on one verification take turns ----------------------------------------

#: limits wide enough for many trials in a row; each trial has its own number and IP
MANY_TRIALS = {
    "limit_start_per_ip": "1000/minute",
    "limit_check_per_ip": "1000/minute",
    "limit_calls_global": "1000/minute",
    "limit_calls_per_country": "1000/hour",
}
TRIALS = 20


def calls_to(app: object, e164: str) -> list[dict]:
    return [call for call in app.state.sandbox.calls() if call["recipient"] == e164.lstrip("+")]  # type: ignore[attr-defined]


@pytest.mark.parametrize("settings_changes", [MANY_TRIALS])
async def test_check_and_call_me_again_sent_together_never_end_verified_with_a_second_call(
    client_for, app: object, clock: FakeClock, db
) -> None:
    for trial in range(TRIALS):
        e164 = f"+3161200{trial:04d}"
        async with client_for(f"198.51.100.{trial + 1}", headers={"HX-Request": "true"}) as tab:
            await call_me(tab, phone=e164)
            code = spoken_code(app)
            clock.advance(31)
            check, resend = await asyncio.gather(
                tab.post("/confirm", data={"code": code, "call": "1"}), tab.post("/resend")
            )
        async with db() as session:
            [verification] = (await session.scalars(select(Verification).where(Verification.number == e164))).all()
        placed = calls_to(app, e164)
        if verification.status == "verified":
            assert check.status_code == 200 and "is verified" in check.text
            assert resend.status_code == 409 and len(placed) == 1, f"trial {trial}: verified and called again"
        else:
            assert resend.status_code == 200 and "again now" in resend.text, f"trial {trial}: {resend.text}"
            assert check.status_code == 409 and "A new call was placed since" in check.text
            assert (verification.status, verification.calls, len(placed)) == ("pending", 2, 2)
            assert verification.provider_ref == placed[0]["id"], "the verification is on the newest call"


class GatedSandbox(httpx.AsyncBaseTransport):
    """The app's own sandbox; when armed, the next create is held until the test opens the gate."""

    def __init__(self) -> None:
        self.app: object = None
        self.armed = False
        self.holding = asyncio.Event()
        self.opened = asyncio.Event()
        self.checked = asyncio.Event()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and self.armed:
            self.armed = False
            self.holding.set()
            await self.opened.wait()
        if request.method == "GET" and "token" in request.url.params:
            self.checked.set()
        sandbox = httpx.ASGITransport(app=create_sandbox_app(self.app.state.sandbox))  # type: ignore[attr-defined]
        return await sandbox.handle_async_request(request)


@pytest.fixture
async def gated(settings, clock: FakeClock, client_for):
    """An app whose sandbox can hold a create, and a htmx client of it."""
    gate = GatedSandbox()
    application = create_app(settings, clock=clock, provider_transport=gate)
    gate.app = application
    async with LifespanManager(application) as manager:
        transport = httpx.ASGITransport(app=manager.app, client=("203.0.113.10", 40000))
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver", headers={"HX-Request": "true"}
        ) as tab:
            yield application, manager.app, gate, tab


async def until_checked_or_a_moment(gate: GatedSandbox) -> None:
    """Give a check in flight the chance to reach the provider (it must not, while a resend is calling)."""
    try:
        await asyncio.wait_for(gate.checked.wait(), timeout=1.0)
    except TimeoutError:
        pass


#: the held create must not run into the provider deadline while the test holds it
HOLDING = {"provider_deadline": 5.0}


@pytest.mark.parametrize("settings_changes", [HOLDING])
async def test_a_check_sent_while_call_me_again_is_calling_waits_and_answers_for_its_own_call(
    gated, clock: FakeClock, db
) -> None:
    application, _asgi, gate, tab = gated
    await call_me(tab)
    code = spoken_code(application)
    clock.advance(31)
    gate.armed = True
    resend = asyncio.create_task(tab.post("/resend"))
    await gate.holding.wait()  # the old call is cancelled, the new one is being placed
    check = asyncio.create_task(tab.post("/confirm", data={"code": code, "call": "1"}))
    await until_checked_or_a_moment(gate)
    gate.opened.set()
    resent, checked = await resend, await check
    assert resent.status_code == 200 and "again now" in resent.text
    assert checked.status_code == 409 and "A new call was placed since" in checked.text
    [verification] = await verifications(db)
    assert (verification.status, verification.calls) == ("pending", 2), "the new call stays open"
    assert verification.provider_ref == application.state.sandbox.calls()[0]["id"]
    assert [a.outcome for a in await attempts(db)] == ["sent", "sent", "superseded"]


@pytest.mark.parametrize("settings_changes", [HOLDING])
async def test_a_check_in_another_process_waits_for_call_me_again_there(gated, settings, clock: FakeClock, db) -> None:
    """Two workers on one database: only the lease on the row keeps them apart."""
    application, _asgi, gate, tab = gated
    await call_me(tab)
    code = spoken_code(application)
    clock.advance(31)
    other = create_app(settings, clock=clock, provider_transport=gate)
    async with LifespanManager(other) as manager:
        transport = httpx.ASGITransport(app=manager.app, client=("203.0.113.10", 40000))
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver", headers={"HX-Request": "true"}, cookies=tab.cookies
        ) as other_tab:
            gate.armed = True
            resend = asyncio.create_task(tab.post("/resend"))
            await gate.holding.wait()
            check = asyncio.create_task(other_tab.post("/confirm", data={"code": code, "call": "1"}))
            await until_checked_or_a_moment(gate)
            gate.opened.set()
            resent, checked = await resend, await check
    assert resent.status_code == 200
    assert checked.status_code == 409 and "A new call was placed since" in checked.text
    [verification] = await verifications(db)
    assert (verification.status, verification.calls) == ("pending", 2)
    assert (verification.busy_until, verification.busy_by) == (None, None), "both leases were given back"


async def held_by_another_process(db, clock: FakeClock) -> None:
    """Every verification leased by a process that keeps it for a minute."""
    async with db() as session:
        await session.execute(
            update(Verification).values(busy_by="otherprocess", busy_until=clock() + timedelta(minutes=1))
        )
        await session.commit()


@pytest.mark.parametrize("settings_changes", [{"provider_deadline": 0.1}])
async def test_a_verification_another_process_keeps_busy_is_a_503_with_the_code_form(
    htmx: httpx.AsyncClient, app: object, clock: FakeClock, db
) -> None:
    await call_me(htmx)
    await held_by_another_process(db, clock)
    response = await htmx.post("/confirm", data={"code": spoken_code(app), "call": "1"})
    assert response.status_code == 503 and response.headers["retry-after"] == "5"
    assert "This verification is busy in another window" in response.text and 'name="code"' in response.text
    assert [a.outcome for a in await attempts(db)] == ["sent", "verification_busy"]
    [verification] = await verifications(db)
    assert verification.status == "pending", "nothing was checked"


@pytest.mark.parametrize("settings_changes", [{"provider_deadline": 0.1}])
async def test_use_a_different_number_on_a_verification_another_process_keeps_busy_is_a_503(
    htmx: httpx.AsyncClient, clock: FakeClock, db
) -> None:
    await call_me(htmx)
    await held_by_another_process(db, clock)
    response = await htmx.post("/restart")
    assert response.status_code == 503 and "This verification is busy" in response.text
    assert 'name="code"' in response.text
    [verification] = await verifications(db)
    assert verification.status == "pending"


# -- the seam for the hand-off: verified after a given moment --------------------------------------


@pytest.fixture
async def flow(settings, clock: FakeClock):
    """The flow on its own, on the test's database and a sandbox of its own; (flow, sandbox)."""
    sandbox = SandboxState(clock=clock)
    engine = create_engine(settings.database_url, serving=True)
    sessions = create_sessionmaker(engine)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_sandbox_app(sandbox))) as http:
        providers = Providers.from_settings(http, settings, clock, sandbox_url="http://sandbox.invalid")
        guard = Guard(settings, RateLimits("memory://", now=lambda: clock().timestamp()), sessions, clock)
        yield Flow(sessions, providers, guard, settings, clock, outbox=Outbox()), sandbox
    await engine.dispose()


async def test_only_a_verification_completed_after_the_moment_given_satisfies_verified_since(
    flow, clock: FakeClock
) -> None:
    flow, sandbox = flow
    began = clock()  # say, when an authorization request began
    pending = await flow.start("0612345678", "NL", "203.0.113.10")
    assert await flow.verified_since(pending.id, began) is None, "a pending verification satisfies nothing"
    clock.advance(5)
    verified = await flow.confirm(pending.id, sandbox.calls()[0]["token"], "203.0.113.10", for_call="1")
    assert verified.verified_at == clock()
    assert await flow.verified_since(pending.id, began) == verified
    assert await flow.verified_since(pending.id, clock() + timedelta(seconds=1)) is None, "verified before it began"
    assert await flow.verified_since("no-such-verification", began) is None
