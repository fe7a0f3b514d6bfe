"""Operators' passwords: salted scrypt hashes, never the password itself.

Format: `scrypt$<n>$<r>$<p>$<salt, base64>$<hash, base64>`, made by
`voice2fa hash-password` and put in ADMIN_PASSWORD_HASH.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

N, R, P = 2**14, 8, 1
_LENGTH = 32


#: Said with a password `sandbox_password` made.
GENERATED = "generated for this run; set ADMIN_PASSWORD_HASH from `voice2fa hash-password` to choose one"


def sandbox_password() -> tuple[str, str]:
    """A random operators' password for one run in sandbox mode, and its hash."""
    password = secrets.token_urlsafe(12)
    return password, hash_password(password)


def hash_password(password: str) -> str:
    """A new salted scrypt hash of `password`."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=N, r=R, p=P, dklen=_LENGTH)
    return "$".join(["scrypt", str(N), str(R), str(P), _b64(salt), _b64(digest)])


def verify_password(password: str, stored: str) -> bool:
    """Whether `password` matches `stored`, in constant time; False for a malformed hash."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest, validate=True)
        actual = hashlib.scrypt(
            password.encode("utf-8", "surrogatepass"),
            salt=base64.b64decode(salt, validate=True),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(expected),
            maxmem=64 * 1024 * 1024,
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


def check_hash(stored: str) -> None:
    """Refuse, at start-up, a hash that no password could ever match."""
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        raise ValueError("ADMIN_PASSWORD_HASH is not a hash from `voice2fa hash-password`")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
