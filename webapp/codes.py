"""The code a person types: checked for format, so one that cannot be right never reaches the provider."""

from __future__ import annotations

import unicodedata

from webapp.errors import Refusal
from webapp.outcomes import Outcome


class InvalidCode(Refusal):
    """A code that cannot be right; it never reaches the provider."""

    def __init__(self, message: str) -> None:
        super().__init__(Outcome.INVALID_CODE, message, field="code")


def clean_code(raw: str, length: int) -> str:
    """The code as ASCII digits, or InvalidCode if it cannot be right."""
    text = "".join(ch for ch in raw if not ch.isspace() and ch not in "-.")
    if not text:
        raise InvalidCode("Type the code you heard.")
    if len(text) > 4 * length:
        raise InvalidCode(f"The code has {length} digits.")
    digits = []
    for ch in text:
        value = unicodedata.decimal(ch, None)
        if value is None:
            raise InvalidCode("The code is made of digits only.")
        digits.append(str(value))
    if len(digits) != length:
        raise InvalidCode(f"The code has {length} digits.")
    return "".join(digits)
