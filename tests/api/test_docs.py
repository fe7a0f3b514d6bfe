"""The outcome table against what raises refusals, README's error codes, and the OpenAPI document."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
from schemathesis.specs.openapi.definitions import OPENAPI_31_VALIDATOR

from webapp.api import openapi
from webapp.api.problems import OUTCOMES
from webapp.outcomes import Outcome

ROOT = Path(__file__).resolve().parents[2]
#: `Refusal("outcome", …)` and `ApiRefusal("outcome", …)` where they are raised, and the flow's
#: `_call_failed(kind, "outcome", …)`, and Refusal's subclasses (InvalidNumber, InvalidCode, BadForm) in their
#: `super().__init__("outcome", …)`.
RAISED = re.compile(r"(?:Refusal\(\s*|_call_failed\(\s*\w+,\s*|super\(\).__init__\(\s*)Outcome\.([A-Z_]+)")
#: The page's own: a form it can't read. The API reads no form.
PAGE_ONLY = {"bad_request"}
#: Where the flow's raise site says another status than the table. The flow raises `provider_error` with
#: 422 for a recipient the provider refused ("We can't call this number") and 503 otherwise; the API
#: answers the table's 503 for both. (A later refactor gives the 422 case an outcome of its own.)
STATUS_DIFFERS = {("provider_error", 422)}


def _sources() -> str:
    return "\n".join(path.read_text() for path in sorted((ROOT / "webapp").rglob("*.py")))


def test_every_outcome_a_refusal_is_raised_with_is_in_the_table() -> None:
    raised = {Outcome[name] for name in RAISED.findall(_sources())} - PAGE_ONLY
    assert {"invalid_number", "invalid_code", "blocked_ip", "resend_too_soon", "unauthorized"} <= raised
    assert raised - set(OUTCOMES) == set()


def test_the_tables_status_is_the_one_the_raise_site_gives() -> None:
    """Each literal `Refusal("x", …, status_code=N)` (422 when it says none) against the table.

    (An `ApiRefusal` takes its status from the table.)
    """
    found = set()
    for match in re.finditer(r"(?<!Api)Refusal\(\s*Outcome\.([A-Z_]+)(.*?)\)\s*(?:from None)?$", _sources(), re.MULTILINE | re.DOTALL):
        outcome, rest = Outcome[match.group(1)], match.group(2)
        if outcome in PAGE_ONLY:
            continue
        status = re.search(r"status_code=(\d{3})", rest.split("Refusal(")[0])
        found.add((outcome, int(status.group(1)) if status else 422))
    assert found, "no raise sites found"
    differing = {(outcome, status) for outcome, status in found if OUTCOMES[outcome].status != status}
    assert differing == STATUS_DIFFERS


def _readme_codes() -> dict[str, tuple[int, str]]:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## The JSON API"):]
    section = section[: section.index("\n## ", 1)]
    rows = re.findall(r"^\| `([a-z_]+)` \| (\d{3}) \| ([^|]+?) \|", section, re.MULTILINE)
    return {code: (int(status), title) for code, status, title in rows}


def test_readmes_error_codes_are_the_outcome_table() -> None:
    assert _readme_codes() == {code: (kind.status, kind.title) for code, kind in OUTCOMES.items()}


def test_the_document_is_valid_openapi_3_1() -> None:
    document = openapi.document()
    assert document["openapi"] == "3.1.0"
    OPENAPI_31_VALIDATOR.validate(document)


def test_each_operations_statuses_are_those_of_its_outcomes() -> None:
    document = openapi.document()
    for method, path, _, _, _, success, outcomes in openapi.OPERATIONS:
        statuses = set(document["paths"][path][method]["responses"])
        assert statuses == {str(success)} | {str(OUTCOMES[outcome].status) for outcome in outcomes}
    problem = document["components"]["schemas"]["Problem"]
    assert problem["properties"]["code"]["enum"] == list(OUTCOMES)
    create = document["components"]["schemas"]["CreateVerification"]
    assert create["additionalProperties"] is False and create["required"] == ["phone_number"]


async def test_the_document_and_the_reference_page_are_served(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/openapi.json")
    assert response.status_code == 200 and response.json() == openapi.document()
    page = await client.get("/api/v1/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for code in OUTCOMES:
        assert f'id="{code}"' in page.text
    assert "<script" not in page.text.split("</head>")[1]
