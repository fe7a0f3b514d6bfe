"""Reading a JSON body: bounded in size and depth, strictly UTF-8, then validated by its model.

Whatever can't be read is an `ApiRefusal` with its own outcome (415, 413,
400, 422), answered as problem details: never a 500, and nothing reaches the
flow. The depth is checked on the bytes before `json.loads` runs, so a body
of ten thousand `[` costs a scan, not a recursion.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import ClientDisconnect, Request

from webapp.api.problems import ApiRefusal
from webapp.api.schemas import FieldError
from webapp.outcomes import Outcome

MAX_BODY_BYTES = 16 * 1024
MAX_DEPTH = 8

Model = TypeVar("Model", bound=BaseModel)


async def read_body(request: Request) -> bytes:
    """The body, up to MAX_BODY_BYTES."""
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                raise ApiRefusal(Outcome.BODY_TOO_LARGE, f"The body is over {MAX_BODY_BYTES // 1024} KiB.")
    except ClientDisconnect:
        raise ApiRefusal(Outcome.INVALID_BODY, "The body did not arrive.") from None
    return bytes(body)


def _content_type_is_json(request: Request) -> bool:
    media_type, _, params = request.headers.get("content-type", "").partition(";")
    charset = params.strip().lower().removeprefix("charset=").strip('"') if "charset" in params.lower() else "utf-8"
    return media_type.strip().lower() == "application/json" and charset == "utf-8"


def _too_deep(body: bytes) -> bool:
    depth = 0
    in_string = escaped = False
    for byte in body:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > MAX_DEPTH:
                return True
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return False


def _no_repeats(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for name, value in pairs:
        if name in found:
            raise ValueError(f"the field {name!r} is given twice")
        found[name] = value
    return found


def parse_json(request: Request, body: bytes) -> Any:
    """The JSON value of `body`, sent as application/json."""
    if not _content_type_is_json(request):
        raise ApiRefusal(Outcome.UNSUPPORTED_MEDIA_TYPE, "Send the body as application/json (UTF-8).")
    if _too_deep(body):
        raise ApiRefusal(Outcome.INVALID_BODY, f"The JSON is nested more than {MAX_DEPTH} levels deep.")
    try:
        return json.loads(body.decode("utf-8"), object_pairs_hook=_no_repeats, parse_constant=_refuse_constant)
    except UnicodeDecodeError:
        raise ApiRefusal(Outcome.INVALID_BODY, "The body is not valid UTF-8.") from None
    except ValueError as exc:  # JSONDecodeError, a repeated field, NaN or Infinity
        raise ApiRefusal(Outcome.INVALID_BODY, f"The body is not valid JSON: {exc}.") from None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def validate(model: type[Model], value: Any) -> Model:
    """`value` as `model`, or invalid_request naming each field's trouble."""
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        errors = [
            FieldError(field=".".join(str(part) for part in error["loc"]) or "(body)", message=_message(error))
            for error in exc.errors()[:10]
        ]
        summary = "; ".join(f"{error.field}: {error.message}" for error in errors)
        raise ApiRefusal(Outcome.INVALID_REQUEST, f"The request body is not right: {summary}.", errors=errors) from None


def _message(error: Any) -> str:
    message = str(error["msg"])
    return message.removeprefix("Value error, ")


async def read_model(request: Request, model: type[Model]) -> tuple[Model, dict[str, Any]]:
    """The body validated as `model`, and the JSON object it came from (for the idempotency fingerprint)."""
    value = parse_json(request, await read_body(request))
    return validate(model, value), value if isinstance(value, dict) else {}
