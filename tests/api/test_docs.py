"""The outcome table against what raises refusals, README's error codes, and the OpenAPI document."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
from schemathesis.specs.openapi.definitions import OPENAPI_31_VALIDATOR

from webapp.api import openapi
from webapp.api.problems import problem
from webapp.errors import Refusal
from webapp.outcomes import API_OUTCOMES, REFUSALS, Outcome

ROOT = Path(__file__).resolve().parents[2]
#: `Refusal(Outcome.X, …)` and `ApiRefusal(Outcome.X, …)` where they are raised, the flow's
#: `_call_failed(kind, Outcome.X, …)`, Refusal's subclasses (InvalidNumber, InvalidCode, BadForm) in their
#: `super().__init__(Outcome.X, …)`, and a BadForm's own outcome.
RAISED = re.compile(
    r"(?:Refusal\(\s*|_call_failed\(\s*\w+,\s*|super\(\).__init__\(\s*|BadForm\([^()]*,\s*)Outcome\.([A-Z_]+)"
)
#: The page's own: a form it can't read. The API reads no form.
PAGE_ONLY = {Outcome.BAD_REQUEST, Outcome.FORM_TOO_LARGE, Outcome.FORM_NOT_URLENCODED}


def _sources() -> str:
    return "\n".join(path.read_text() for path in sorted((ROOT / "webapp").rglob("*.py")))


def _calls(source: str, name: str) -> list[str]:
    """The text of each `name(…)` call in `source`, its parentheses balanced."""
    calls = []
    for match in re.finditer(rf"\b{name}\(", source):
        depth, end = 1, match.end()
        while depth:
            depth += {"(": 1, ")": -1}.get(source[end], 0)
            end += 1
        calls.append(source[match.start() : end])
    return calls


def test_every_outcome_a_refusal_is_raised_with_is_in_the_table() -> None:
    raised = {Outcome[name] for name in RAISED.findall(_sources())}
    assert {
        Outcome.INVALID_NUMBER,
        Outcome.INVALID_CODE,
        Outcome.BLOCKED_IP,
        Outcome.RESEND_TOO_SOON,
        Outcome.UNAUTHORIZED,
        Outcome.RECIPIENT_REFUSED,
        Outcome.FORM_TOO_LARGE,
    } <= raised
    assert raised - set(REFUSALS) == set()
    assert set(REFUSALS) - set(API_OUTCOMES) == PAGE_ONLY


def test_no_raise_site_names_a_status_or_a_form() -> None:
    """The status and the form are the table's: a refusal is made with its outcome, never with either."""
    calls = [
        call
        for name in ("Refusal", "ApiRefusal", "BadForm", "InvalidCode", "InvalidNumber")
        for call in _calls(_sources(), name)
    ]
    assert len(calls) > 40, "raise sites not found"
    assert [call for call in calls if "status_code=" in call or "step=" in call] == []


def test_each_message_the_table_gives_has_what_it_names() -> None:
    """Only {wait} is filled in, from the refusal's retry_after; an outcome without one names no wait."""
    for outcome, told in REFUSALS.items():
        if told.message is not None:
            assert set(re.findall(r"{(\w*)}", told.message)) <= {"wait"}, outcome
            assert Refusal(outcome, retry_after=30).message == told.message.format(wait="30 seconds")


def test_the_page_and_the_api_answer_a_refusal_with_the_tables_status() -> None:
    for outcome, told in API_OUTCOMES.items():
        refusal = Refusal(outcome, "message")
        assert refusal.status_code == told.status == problem(refusal).status_code


def _readme_codes() -> dict[str, tuple[int, str]]:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## The JSON API") :]
    section = section[: section.index("\n## ", 1)]
    rows = re.findall(r"^\| `([a-z_]+)` \| (\d{3}) \| ([^|]+?) \|", section, re.MULTILINE)
    return {code: (int(status), title) for code, status, title in rows}


def test_readmes_error_codes_are_the_outcome_table() -> None:
    assert _readme_codes() == {code: (told.status, told.title) for code, told in API_OUTCOMES.items()}


def test_the_document_is_valid_openapi_3_1() -> None:
    document = openapi.document()
    assert document["openapi"] == "3.1.0"
    OPENAPI_31_VALIDATOR.validate(document)


def test_each_operations_statuses_are_those_of_its_outcomes() -> None:
    document = openapi.document()
    for method, path, _, _, _, success, outcomes in openapi.OPERATIONS:
        statuses = set(document["paths"][path][method]["responses"])
        assert statuses == {str(success)} | {str(API_OUTCOMES[outcome].status) for outcome in outcomes}
    problem = document["components"]["schemas"]["Problem"]
    assert problem["properties"]["code"]["enum"] == list(API_OUTCOMES)
    create = document["components"]["schemas"]["CreateVerification"]
    assert create["additionalProperties"] is False and create["required"] == ["phone_number"]


async def test_the_document_and_the_reference_page_are_served(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/openapi.json")
    assert response.status_code == 200 and response.json() == openapi.document()
    page = await client.get("/api/v1/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for code in API_OUTCOMES:
        assert f'id="{code}"' in page.text
    assert "<script" not in page.text.split("</head>")[1]


async def test_the_reference_page_uses_the_apps_stylesheet_and_shows_codes_as_code(client: httpx.AsyncClient) -> None:
    page = (await client.get("/api/v1/docs")).text
    assert 'href="/static/app.css"' in page  # the app's static files, not under the API's mount
    assert "<code>unauthorized</code>" in page and "`" not in page.split("<h2>Operations</h2>")[1].split("<h2>")[0]
