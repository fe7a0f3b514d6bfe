"""The OpenAPI 3.1 document of /api/v1, generated from the models the handlers validate with.

pydantic emits JSON Schema 2020-12, which is OpenAPI 3.1's own dialect, so
the components are the models' schemas as they are. Each operation lists the
outcomes it can answer; its error statuses, and the codes under each, come
from the one outcome table (`webapp.outcomes.REFUSALS`), so the document can't name
a status the handlers don't give, nor miss one they do.
"""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from webapp.api.idempotency import MAX_KEY
from webapp.api.problems import MEDIA_TYPE
from webapp.api.schemas import CheckCode, CreateVerification, Problem, VerificationOut
from webapp.outcomes import API_OUTCOMES, Outcome

REF = "#/components/schemas/{model}"

#: What any authenticated operation can answer.
EVERYWHERE = (Outcome.UNAUTHORIZED, Outcome.BLOCKED_IP, Outcome.LIMITER_UNAVAILABLE, Outcome.STORAGE_UNAVAILABLE)
BODY = (Outcome.INVALID_BODY, Outcome.BODY_TOO_LARGE, Outcome.UNSUPPORTED_MEDIA_TYPE, Outcome.INVALID_REQUEST)
CALL_LIMITS = (
    Outcome.BLOCKED_DENYLIST,
    Outcome.BLOCKED_COUNTRY,
    Outcome.BLOCKED_NUMBER_TYPE,
    Outcome.BLOCKED_CIRCUIT,
    Outcome.BLOCKED_NUMBER,
    Outcome.BLOCKED_PENDING,
    Outcome.BLOCKED_GLOBAL,
    Outcome.BLOCKED_CLIENT,
    Outcome.PROVIDER_ERROR,
    Outcome.RECIPIENT_REFUSED,
    Outcome.CALL_FAILED,
)

#: Each operation: (method, path, operationId, summary, request model, success status, outcomes it may answer).
OPERATIONS: tuple[tuple[str, str, str, str, type[BaseModel] | None, int, tuple[Outcome, ...]], ...] = (
    (
        "post",
        "/verifications",
        "createVerification",
        "Place a call that reads a code to a number",
        CreateVerification,
        201,
        (
            *EVERYWHERE,
            *BODY,
            Outcome.INVALID_IDEMPOTENCY_KEY,
            Outcome.IDEMPOTENCY_MISMATCH,
            Outcome.IDEMPOTENCY_IN_PROGRESS,
            Outcome.INVALID_NUMBER,
            *CALL_LIMITS,
            Outcome.NO_VERIFICATION,
        ),
    ),
    ("get", "/verifications/{id}", "getVerification", "A verification", None, 200, (*EVERYWHERE, Outcome.NOT_FOUND)),
    (
        "delete",
        "/verifications/{id}",
        "cancelVerification",
        "Give up on a verification",
        None,
        204,
        (*EVERYWHERE, Outcome.NOT_FOUND, Outcome.VERIFICATION_BUSY),
    ),
    (
        "post",
        "/verifications/{id}/check",
        "checkVerification",
        "Check a code: 200 with the verification, `verified` or not",
        CheckCode,
        200,
        (
            *EVERYWHERE,
            Outcome.NOT_FOUND,
            *BODY,
            Outcome.INVALID_CODE,
            Outcome.REPLAYED,
            Outcome.SUPERSEDED,
            Outcome.NO_VERIFICATION,
            Outcome.VERIFICATION_BUSY,
            Outcome.PROVIDER_ERROR,
        ),
    ),
    (
        "post",
        "/verifications/{id}/resend",
        "resendVerification",
        'A new call, as "Call me again"',
        None,
        200,
        (
            *EVERYWHERE,
            Outcome.NOT_FOUND,
            Outcome.ALREADY_VERIFIED,
            Outcome.RESEND_TOO_SOON,
            Outcome.NO_VERIFICATION,
            Outcome.VERIFICATION_BUSY,
            *CALL_LIMITS,
        ),
    ),
)

ID_PARAMETER = {
    "name": "id",
    "in": "path",
    "required": True,
    "description": "The verification's id, from its create.",
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
}
IDEMPOTENCY_PARAMETER = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "Makes a retried create safe for 24 hours: the same key (from the same client) answers "
    "the first answer again and places no second call; with another body it is 422.",
    "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY, "pattern": "^[\\x21-\\x7e]+$"},
}
HEADERS = {
    401: {"WWW-Authenticate": {"description": "The Basic challenge.", "schema": {"type": "string"}}},
    429: {"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "string", "pattern": "^[0-9]+$"}}},
}


def _problem_responses(outcomes: tuple[Outcome, ...]) -> dict[str, Any]:
    by_status: dict[int, list[Outcome]] = {}
    for outcome in dict.fromkeys(outcomes):
        by_status.setdefault(API_OUTCOMES[outcome].status, []).append(outcome)
    responses: dict[str, Any] = {}
    for status, codes in sorted(by_status.items()):
        response: dict[str, Any] = {
            "description": "Problem details; `code` is one of: " + ", ".join(f"`{code}`" for code in codes),
            "content": {MEDIA_TYPE: {"schema": {"$ref": REF.format(model="Problem")}}},
        }
        if status in HEADERS:
            response["headers"] = HEADERS[status]
        responses[str(status)] = response
    return responses


#: From a created verification to what can be done with it (OpenAPI links: the id in the 201's body).
LINKS = {
    name: {"operationId": operation_id, "parameters": {"id": "$response.body#/id"}}
    for name, operation_id in (
        ("get", "getVerification"),
        ("check", "checkVerification"),
        ("resend", "resendVerification"),
        ("cancel", "cancelVerification"),
    )
}


def _success(status: int) -> dict[str, Any]:
    if status == 204:
        return {"description": "Cancelled (or over already)."}
    answer = {
        "description": "The verification.",
        "content": {"application/json": {"schema": {"$ref": REF.format(model="VerificationOut")}}},
    }
    if status == 201:
        answer["links"] = LINKS
    return answer


@cache
def _document() -> dict[str, Any]:
    _, schemas = models_json_schema(
        [
            (CreateVerification, "validation"),
            (CheckCode, "validation"),
            (VerificationOut, "serialization"),
            (Problem, "serialization"),
        ],
        ref_template=REF,
    )
    components = schemas["$defs"]
    components["Problem"]["properties"]["code"]["enum"] = list(API_OUTCOMES)
    paths: dict[str, Any] = {}
    for method, path, operation_id, summary, model, success, outcomes in OPERATIONS:
        operation: dict[str, Any] = {
            "operationId": operation_id,
            "summary": summary,
            "responses": {str(success): _success(success), **_problem_responses(outcomes)},
        }
        parameters = [ID_PARAMETER] if "{id}" in path else []
        if operation_id == "createVerification":
            parameters.append(IDEMPOTENCY_PARAMETER)
        if parameters:
            operation["parameters"] = parameters
        if model is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": REF.format(model=model.__name__)}}},
            }
        paths.setdefault(path, {})[method] = operation
    paths["/openapi.json"] = {
        "get": {
            "operationId": "getOpenApi",
            "summary": "This document",
            "security": [],
            "responses": {
                "200": {
                    "description": "The OpenAPI 3.1 document.",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                }
            },
        }
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "voice2fa API",
            "version": "1",
            "description": "Start a verification call and check its code from a site's backend, with "
            "voice2fa's abuse guard in front of the call and its attempts log behind it. "
            "Errors are RFC 9457 problem details.",
        },
        "servers": [{"url": "/api/v1"}],
        "security": [{"basic": []}],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "basic": {
                    "type": "http",
                    "scheme": "basic",
                    "description": "A registered client (`voice2fa client add`): client_id and client_secret.",
                }
            },
        },
    }


def document() -> dict[str, Any]:
    """The document (a copy: callers may change it)."""
    return copy.deepcopy(_document())
