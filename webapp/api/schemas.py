"""The JSON API's bodies as pydantic models: what the handlers validate and what the OpenAPI document says.

Requests are strict (no extra fields, no coercion: `"code": 123456` is a
422, not a code). They bound sizes only; what a number or a code must look
like is the flow's rule (`webapp.phone`, `webapp.codes`), answered with its
own outcome, never a second check here. `client_ip` is read here because it
decides who the per-IP limits count, before the flow is reached.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

#: The voice's language as VERIFY_LANGUAGE spells it: "en-gb", "nl-nl", "de-de".
LANGUAGE = re.compile(r"[a-z]{2,3}(-[a-z0-9]{2,8})?")

Status = Literal["pending", "verified", "failed", "expired", "cancelled"]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class CreateVerification(_Request):
    """POST /api/v1/verifications."""

    phone_number: str = Field(
        min_length=1,
        max_length=64,
        examples=["+31612345678"],
        description="E.164 (`+31612345678`), or a national number with `country`.",
    )
    country: str | None = Field(
        default=None,
        min_length=2,
        max_length=3,
        examples=["NL"],
        description="ISO 3166 region a national `phone_number` is read in; defaults to DEFAULT_REGION.",
    )
    client_ip: str | None = Field(
        default=None,
        max_length=45,
        examples=["203.0.113.7"],
        description="The person's IP address, which the per-IP limits count. "
        "Absent: the caller's own address, so all of its users share one budget.",
    )
    locale: str | None = Field(
        default=None,
        min_length=2,
        max_length=12,
        examples=["nl-nl"],
        description="The voice's language for this call, as VERIFY_LANGUAGE (`en-gb`, `nl-nl`); "
        "absent: VERIFY_LANGUAGE.",
    )

    @field_validator("client_ip")
    @classmethod
    def _an_address(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            address = ipaddress.ip_address(value)
            if isinstance(address, ipaddress.IPv6Address) and address.scope_id is not None:
                raise ValueError("a zone (%…) names an interface of the caller, not the person's address")
        except ValueError:
            raise ValueError("client_ip is an IPv4 or IPv6 address, like 203.0.113.7 or 2001:db8::1") from None
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)  # one client, one key, as client_ip.py does for the socket
        return str(address)

    @field_validator("locale")
    @classmethod
    def _a_language(cls, value: str | None) -> str | None:
        if value is not None and not LANGUAGE.fullmatch(value.lower()):
            raise ValueError("locale is a language tag like en-gb or nl-nl")
        return value.lower() if value is not None else None


class CheckCode(_Request):
    """POST /api/v1/verifications/{id}/check."""

    code: str = Field(min_length=1, max_length=64, examples=["123456"], description="The code the person heard.")


class VerificationOut(BaseModel):
    """A verification as the API shows it."""

    model_config = ConfigDict(extra="forbid")

    id: str
    status: Status = Field(description="`verified` only when the provider said so.")
    phone_number: str = Field(description="E.164.")
    channel: Literal["call"]
    attempts_left: int = Field(ge=0, description="Wrong codes still allowed on this call.")
    resend_in: int = Field(ge=0, description="Seconds until `resend` is allowed.")
    expires_at: datetime = Field(description="When this call's code runs out (RFC 3339).")
    verified_at: datetime | None = Field(default=None, description="When it was verified; only on a verified one.")


class FieldError(BaseModel):
    """One thing wrong with a request body."""

    model_config = ConfigDict(extra="forbid")

    field: str
    message: str


class Problem(BaseModel):
    """RFC 9457 problem details; `code` is the outcome, from the one outcome table."""

    model_config = ConfigDict(extra="forbid")

    type: str
    title: str
    status: int = Field(ge=400, le=599)
    detail: str
    code: str
    errors: list[FieldError] | None = Field(default=None, description="For `invalid_request`: each field's trouble.")
