"""Reading the page's forms: urlencoded, bounded in size, strictly UTF-8.

A form that can't be read at all is a `BadForm` (a Refusal: its outcome says the status),
so it is answered like any other refusal, never with a 500. `read_logged` also writes
its attempts row, like every refusal's: folded per client and window by the attempts
writer, so a flood of bad forms is one row with a count, and a database that is away
costs the row, not the 4xx.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

from starlette.requests import ClientDisconnect, Request

from webapp.db import STORAGE_ERRORS
from webapp.errors import Refusal
from webapp.outcomes import Outcome

if TYPE_CHECKING:
    from webapp.attempts import AttemptLog

log = logging.getLogger(__name__)

MAX_FORM_BYTES = 32 * 1024


class BadForm(Refusal):
    """A form we cannot read at all: too big, not UTF-8, not urlencoded."""

    def __init__(self, message: str, outcome: Outcome = Outcome.BAD_REQUEST) -> None:
        super().__init__(outcome, message)


async def read_form(request: Request) -> dict[str, str]:
    """The urlencoded form, bounded in size and strictly UTF-8."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_FORM_BYTES:
                raise BadForm("That form is far too big.", Outcome.FORM_TOO_LARGE)
    except ClientDisconnect:  # gone, or cut off by the server for sending too slowly (webapp.server)
        raise BadForm("The form did not arrive.") from None
    if body and content_type != "application/x-www-form-urlencoded":
        raise BadForm("Send the form as application/x-www-form-urlencoded.", Outcome.FORM_NOT_URLENCODED)
    try:
        pairs = parse_qsl(
            body.decode("utf-8"), keep_blank_values=True, encoding="utf-8", errors="strict", max_num_fields=20
        )
    except UnicodeDecodeError:
        raise BadForm("The form could not be read: it is not valid UTF-8.") from None
    except ValueError:
        raise BadForm("The form has too many fields.") from None
    form: dict[str, str] = {}
    for key, value in pairs:
        form.setdefault(key, value)
    return form


async def read_logged(request: Request, attempts: AttemptLog, kind: str, ip: str) -> dict[str, str]:
    """`read_form`; a form it can't read gets its attempts row (`kind`, the BadForm's outcome) before it is refused."""
    try:
        return await read_form(request)
    except BadForm as refusal:
        try:
            await attempts.write(kind, refusal.outcome, ip)
        except STORAGE_ERRORS as exc:  # the row is lost, the answer stays the 4xx it is
            log.warning("attempts row for an unreadable form not written: %s", type(exc).__name__)
        raise
