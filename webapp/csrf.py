"""The form token every operators' POST carries.

Browsers send an operator's Basic credentials with every request to this
site, also with one that a hostile page, or HTML injected into one of ours,
makes them send; and the cross-site check passes a same-origin one. So each
operators' form holds a random token kept in the operator's signed session
cookie: a POST is applied only with the token of a page this session was
shown, so a confirmation page can't be skipped by posting straight to it.
"""

from __future__ import annotations

import secrets
from collections.abc import MutableMapping
from typing import Any

SESSION_KEY = "operator_form_token"
#: The hidden field's name in the operators' forms.
FIELD = "form_token"


def token(session: MutableMapping[str, Any]) -> str:
    """This session's token, made on first use."""
    value = session.get(SESSION_KEY)
    if not isinstance(value, str) or not value:
        value = secrets.token_urlsafe(32)
        session[SESSION_KEY] = value
    return value


def valid(session: MutableMapping[str, Any], submitted: str) -> bool:
    """Whether `submitted` is this session's token (compared in constant time)."""
    expected = session.get(SESSION_KEY)
    if not isinstance(expected, str) or not expected or not submitted:
        return False
    # As bytes: compare_digest refuses str with non-ASCII characters, and a form may send any.
    return secrets.compare_digest(expected.encode("utf-8"), submitted.encode("utf-8", "surrogatepass"))
