"""What the verification page keeps in its signed session cookie: opaque ids and fixed keys only.

The cookie is signed, not encrypted, so it never holds a number or a code
(issue 7, item 12): the page looks up everything else on the server.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: The verification in progress.
VERIFICATION = "verification"
#: The verification that just ended verified, for the result page after a redirect.
RESULT = "result"
#: Sandbox mode only: the session's latest verification, whose calls the sandbox phone keeps
#: showing after it ended (verified, or given up on).
SANDBOX = "sandbox_verification"
#: The pending authorization request of a hand-off (webapp.oidc.page).
AUTHORIZATION_REQUEST = "authorization_request"


def get(session: Mapping[str, Any], key: str) -> str | None:
    """The id under `key`, if the session holds one."""
    value = session.get(key)
    return value if isinstance(value, str) else None
