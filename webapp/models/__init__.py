"""The database's tables, one module per part of the app; importing the package registers them all on `Base`.

- `base`: the naming convention, `UTCDateTime`, `max_length` and `Base`
- `verifications`: verifications in progress and the attempts log
- `guard`: the deny list, the operators' actions on it, the circuit's breaks
- `oidc`: the OpenID Connect hand-off's clients, keys, requests, codes and tokens
- `api`: the JSON API's idempotency keys

`from webapp.models import X` is how the app and `migrations/env.py` reach them.
"""

from webapp.models.api import IDEMPOTENCY_KEY_LENGTH, ApiIdempotencyKey
from webapp.models.base import NAMING, Base, BigId, UTCDateTime, max_length
from webapp.models.guard import AdminAction, CircuitBreak, DenyEntry
from webapp.models.oidc import (
    OidcAccessToken,
    OidcAuthorizationCode,
    OidcAuthorizationRequest,
    OidcClient,
    OidcSecret,
    OidcSigningKey,
)
from webapp.models.verifications import Attempt, Verification

__all__ = [
    "IDEMPOTENCY_KEY_LENGTH",
    "NAMING",
    "AdminAction",
    "ApiIdempotencyKey",
    "Attempt",
    "Base",
    "BigId",
    "CircuitBreak",
    "DenyEntry",
    "OidcAccessToken",
    "OidcAuthorizationCode",
    "OidcAuthorizationRequest",
    "OidcClient",
    "OidcSecret",
    "OidcSigningKey",
    "UTCDateTime",
    "Verification",
    "max_length",
]
