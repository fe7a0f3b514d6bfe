"""Idempotency-Key: a retried create gets the first answer and never rings the phone twice."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.applications import Starlette

from tests.api.support import NUMBER, OTHER_NUMBER, Registered, assert_problem, create
from tests.support import FakeClock, attempts, calls_placed
from webapp import prune
from webapp.app import create_app
from webapp.models import ApiIdempotencyKey
from webapp.settings import Settings

KEY = {"Idempotency-Key": "3f1c0d9e-order-1234"}


async def test_a_retry_with_the_same_key_gets_the_first_answer_and_places_no_second_call(
    api: httpx.AsyncClient,
    app: Starlette,
    db: async_sessionmaker[AsyncSession],
) -> None:
    first = await create(api, headers=KEY, client_ip="203.0.113.7")
    retry = await create(api, headers=KEY, client_ip="203.0.113.7")
    assert first.status_code == retry.status_code == 201
    assert retry.json() == first.json()
    assert retry.headers["idempotent-replayed"] == "true"
    assert calls_placed(app) == 1
    assert [row.outcome for row in await attempts(db)] == ["sent", "idempotent_replay"]


async def test_the_same_body_in_another_spelling_is_the_same_request(api: httpx.AsyncClient, app: Starlette) -> None:
    first = await api.post(
        "/api/v1/verifications",
        content=b'{"phone_number":"+31612345678","client_ip":"203.0.113.7"}',
        headers={**KEY, "Content-Type": "application/json"},
    )
    retry = await api.post(
        "/api/v1/verifications",
        content=b'{ "client_ip": "203.0.113.7",\n  "phone_number": "+31612345678" }',
        headers={**KEY, "Content-Type": "application/json"},
    )
    assert retry.json() == first.json() and calls_placed(app) == 1


async def test_the_same_key_with_another_body_is_422(api: httpx.AsyncClient, app: Starlette) -> None:
    assert (await create(api, headers=KEY)).status_code == 201
    assert_problem(await create(api, OTHER_NUMBER, headers=KEY), 422, "idempotency_mismatch")
    assert calls_placed(app) == 1


async def test_keys_are_per_client(
    api: httpx.AsyncClient,
    api_for: Callable[..., httpx.AsyncClient],
    other: Registered,
    app: Starlette,
) -> None:
    mine = await create(api, headers=KEY)
    async with api_for(other) as other_api:
        theirs = await create(other_api, OTHER_NUMBER, headers=KEY)
    assert theirs.status_code == 201 and theirs.json()["id"] != mine.json()["id"]
    assert calls_placed(app) == 2


async def test_a_refused_create_frees_its_key_for_a_retry(
    api: httpx.AsyncClient,
    app: Starlette,
    clock: FakeClock,
) -> None:
    assert (await create(api, NUMBER)).status_code == 201
    assert_problem(await create(api, NUMBER, headers=KEY), 429, "blocked_pending")
    clock.advance(301)  # the live call's code has run out, and the number's counters have room
    retry = await create(api, NUMBER, headers=KEY)
    assert retry.status_code == 201 and "idempotent-replayed" not in retry.headers
    assert calls_placed(app) == 2


async def test_a_key_lives_24_hours_and_prune_deletes_it_then(
    api: httpx.AsyncClient,
    app: Starlette,
    clock: FakeClock,
    db: async_sessionmaker[AsyncSession],
) -> None:
    first = await create(api, headers=KEY)
    clock.advance(timedelta(hours=24).total_seconds() - 1)
    assert (await create(api, headers=KEY)).json() == first.json()
    assert await prune.prune(db, clock() - timedelta(days=90), clock()) == prune.Pruned(0, 0)
    clock.advance(2)
    assert await prune.count(db, clock() - timedelta(days=90), clock()) == prune.Pruned(0, 0, idempotency_keys=1)
    assert await prune.prune(db, clock() - timedelta(days=90), clock()) == prune.Pruned(0, 0, idempotency_keys=1)
    async with db() as session:
        assert (await session.scalars(select(ApiIdempotencyKey))).all() == []


async def test_an_expired_key_not_yet_pruned_is_a_new_request(
    api: httpx.AsyncClient,
    app: Starlette,
    clock: FakeClock,
) -> None:
    first = await create(api, headers=KEY)
    clock.advance(timedelta(hours=24).total_seconds() + 1)
    again = await create(api, headers=KEY)
    assert again.status_code == 201 and again.json()["id"] != first.json()["id"]
    assert calls_placed(app) == 2


@pytest.mark.parametrize("key", ["", "a" * 256, "naïve", "with space"])
async def test_a_key_that_cant_be_one_is_400(api: httpx.AsyncClient, app: Starlette, key: str) -> None:
    response = await api.post(
        "/api/v1/verifications", json={"phone_number": NUMBER}, headers={"Idempotency-Key": key.encode("utf-8")}
    )  # type: ignore[dict-item]
    assert_problem(response, 400, "invalid_idempotency_key")
    assert calls_placed(app) == 0


async def test_concurrent_retries_in_two_processes_place_one_call(
    settings: Settings,
    clock: FakeClock,
    app: Starlette,
    client_for: Callable[..., httpx.AsyncClient],
    shop: Registered,
) -> None:
    """Two workers on one database get the same key at once: one call; the other answer is a replay or 409."""
    second = create_app(settings, clock=clock)
    async with LifespanManager(second) as manager:
        other_worker = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app, client=("192.0.2.80", 1)),
            base_url="http://testserver",
            auth=shop.auth,
        )
        async with client_for("192.0.2.80", auth=shop.auth) as first_worker, other_worker:
            answers = await asyncio.gather(
                *(create(worker, headers=KEY) for worker in (first_worker, other_worker) * 3)
            )
        placed = calls_placed(app) + calls_placed(second)
    assert placed == 1
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses.count(201) >= 1 and set(statuses) <= {201, 409}
    assert len({answer.json()["id"] for answer in answers if answer.status_code == 201}) == 1
    for answer in answers:
        if answer.status_code == 409:
            assert_problem(answer, 409, "idempotency_in_progress")
            assert answer.headers["retry-after"] == "1"
