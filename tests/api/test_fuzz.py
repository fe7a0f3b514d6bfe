"""Schemathesis drives the API from its own OpenAPI document, against the app served by uvicorn.

Authenticated as a registered client, with a bounded number of examples per
operation, both schema-conforming and not. Every answer must be no 5xx, a
status the document names for the operation, of the content type it names,
and conform to its schema. The calls the fuzz places at the sandbox are
counted: never more than the client's ceiling allows.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings as hypothesis_settings, strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.api.support import register_now, served
from tests.support import FakeClock
from webapp.api import openapi
from webapp.app import create_app
from webapp.settings import Settings

schema = schemathesis.openapi.from_dict(openapi.document())
#: Numbers the guard lets through: random strings seldom are one, and the fuzz should also get past a create.
CALLABLE = ("+31612345678", "+31612345679", "06 12345680", "+32470123456", "+447700900123")


@schema.hook
def flatmap_body(context: schemathesis.HookContext, body: Any) -> st.SearchStrategy[Any]:
    """A create's body, or the same body with a number that can be called."""
    operation = context.operation
    creating = operation is not None and operation.path == "/verifications"
    if not creating or not isinstance(body, dict) or "phone_number" not in body:
        return st.just(body)
    return st.one_of(st.just(body), st.sampled_from(CALLABLE).map(lambda number: {**body, "phone_number": number}))


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
#: LIMIT_API_CALLS_PER_CLIENT during the fuzz: the most calls one operation's examples may place.
CEILING = 10


@dataclass
class Target:
    base_url: str
    session: requests.Session


@pytest.fixture
def target(settings: Settings, clock: FakeClock, database_url: str) -> Iterator[Target]:
    """The app on a loopback port, and a session authenticated as a registered client."""
    client = register_now(database_url, clock, "Fuzz")
    # The fuzz sends wrong credentials on purpose, and most creates from this one address: those two limits
    # are raised so that it gets past them; the calls stay bounded by the client's ceiling.
    fuzzing = settings.replace(
        limit_api_calls_per_client=f"{CEILING}/hour",
        limit_api_auth_failures_per_ip="1000/minute",
        limit_start_per_ip="1000/minute",
        limit_check_per_ip="1000/minute",
    )
    app = create_app(fuzzing, clock=clock)
    with served(app) as base_url, requests.Session() as session:
        session.auth = (client.client_id, client.secret)
        yield Target(base_url + "/api/v1", session)
        placed = len(app.state.sandbox.calls())
    assert placed <= CEILING, f"the fuzz placed {placed} calls"


@schema.parametrize()
@hypothesis_settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_the_api_answers_as_its_document_says(case: schemathesis.Case, target: Target) -> None:
    response = case.call(base_url=target.base_url, session=target.session, timeout=10)
    case.validate_response(response, checks=CHECKS)


def test_sequences_of_calls_through_the_documents_links_answer_as_it_says(target: Target) -> None:
    """Create, then get, check, resend or cancel that verification (the 201's links), in random orders."""

    class Sequences(schema.as_state_machine()):  # type: ignore[misc]  # a class made at run time
        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
            return {"base_url": target.base_url, "session": target.session, "timeout": 10}

        def validate_response(
            self, response: Any, case: schemathesis.Case, additional_checks: Any = None, **kwargs: Any
        ) -> None:
            case.validate_response(response, checks=CHECKS)

    Sequences.run(
        settings=hypothesis_settings(
            max_examples=15,
            stateful_step_count=6,
            deadline=None,
            derandomize=True,
            suppress_health_check=[
                HealthCheck.function_scoped_fixture,
                HealthCheck.too_slow,
                HealthCheck.filter_too_much,
            ],
        )
    )
