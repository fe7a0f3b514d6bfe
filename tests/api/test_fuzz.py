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

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings as hypothesis_settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from webapp.api import openapi
from webapp.app import create_app
from webapp.settings import Settings

from ..conftest import FakeClock
from .conftest import register_now, served

schema = schemathesis.openapi.from_dict(openapi.document())
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
    app = create_app(settings.replace(limit_api_calls_per_client=f"{CEILING}/hour"), clock=clock)
    with served(app) as base_url, requests.Session() as session:
        session.auth = (client.client_id, client.secret)
        yield Target(base_url + "/api/v1", session)
        placed = len(app.state.sandbox.calls())
    assert placed <= CEILING, f"the fuzz placed {placed} calls"


@schema.parametrize()
@hypothesis_settings(max_examples=30, deadline=None, derandomize=True,
                     suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                            HealthCheck.filter_too_much])
def test_the_api_answers_as_its_document_says(case: schemathesis.Case, target: Target) -> None:
    response = case.call(base_url=target.base_url, session=target.session, timeout=10)
    case.validate_response(response, checks=CHECKS)
