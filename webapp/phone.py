"""Phone numbers as people type them, and the country select.

`parse_phone` turns what a person typed, with the country they picked, into a
`PhoneNumber` (E.164 and friends) or raises `InvalidNumber` with a message fit
for that person. `countries` and `CountryOptions` give the country select,
named from Babel's CLDR data and rendered once per locale at start-up.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

import babel
import markupsafe
import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat

from webapp.errors import Refusal
from webapp.outcomes import Outcome

__all__ = [
    "MAX_INPUT_CHARS",
    "Country",
    "CountryOptions",
    "InvalidNumber",
    "PhoneNumber",
    "countries",
    "format_international",
    "parse_phone",
]

#: phonenumbers' number types by the names the settings use.
NUMBER_TYPES: dict[str, int] = {
    "fixed_line": phonenumbers.PhoneNumberType.FIXED_LINE,
    "mobile": phonenumbers.PhoneNumberType.MOBILE,
    "fixed_line_or_mobile": phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
    "toll_free": phonenumbers.PhoneNumberType.TOLL_FREE,
    "premium_rate": phonenumbers.PhoneNumberType.PREMIUM_RATE,
    "shared_cost": phonenumbers.PhoneNumberType.SHARED_COST,
    "voip": phonenumbers.PhoneNumberType.VOIP,
    "personal_number": phonenumbers.PhoneNumberType.PERSONAL_NUMBER,
    "pager": phonenumbers.PhoneNumberType.PAGER,
    "uan": phonenumbers.PhoneNumberType.UAN,
    "voicemail": phonenumbers.PhoneNumberType.VOICEMAIL,
    "unknown": phonenumbers.PhoneNumberType.UNKNOWN,
}

MAX_INPUT_CHARS = 64
# E.164 allows 15 digits; a two-digit international prefix such as 00 adds two.
MAX_DIGITS = 17
MIN_DIGITS = 4

MSG_EMPTY = "Type your phone number."
MSG_TOO_LONG = "That is too long for a phone number."
MSG_TOO_SHORT = "That is too short for a phone number."
MSG_CHARACTERS = "Phone numbers can contain only digits, spaces and + - . ( ) /."
MSG_PLUS = "Use only one + at the start of the number."
MSG_NO_REGION = "Choose a country, or type the number with its + country code."
MSG_COUNTRY_CODE = "That country code doesn't exist: check the digits after the +."
MSG_NOT_A_NUMBER = "That doesn't look like a phone number."

_PLUS = frozenset("+\uff0b")  # ASCII and full-width plus
_SEPARATORS = frozenset(
    "-.()/"
    "\u2010\u2011\u2012\u2013\u2014\u2015\u2212"  # hyphens, dashes, minus sign
    "\uff0d\uff0e\uff08\uff09\uff0f"  # full-width - . ( ) /
    "\t\n\r"
    # Invisible bidi and zero-width marks: phones and right-to-left pages wrap
    # copied numbers in them (iOS copies "\u202a+31 6 …\u202c").
    "\u061c\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
    "\u2060\u2066\u2067\u2068\u2069\ufeff"
)
_SPACE_CATEGORIES = frozenset({"Zs", "Zl", "Zp"})  # NBSP, thin space, ideographic space…


@dataclass(frozen=True, slots=True)
class PhoneNumber:
    """A valid phone number, in the forms the rest of the app needs."""

    e164: str
    region: str
    international: str
    number_type: int

    @property
    def digits(self) -> str:
        """The E.164 number without its "+", as MessageBird's recipient."""
        return self.e164[1:]


class InvalidNumber(Refusal):
    """What the person typed is not a phone number we can call."""

    def __init__(self, message: str) -> None:
        super().__init__(Outcome.INVALID_NUMBER, message, field="phone")


def _clean(raw: str) -> str:
    """Return the digits (ASCII, with a leading "+" if typed), or raise InvalidNumber."""
    out: list[str] = []
    for ch in raw:
        value = unicodedata.decimal(ch, None)
        if value is not None:
            out.append(str(value))
        elif ch in _PLUS:
            if out:
                raise InvalidNumber(MSG_PLUS)
            out.append("+")
        elif ch in _SEPARATORS or unicodedata.category(ch) in _SPACE_CATEGORIES:
            continue
        else:
            # Checked here rather than left to phonenumbers, which would
            # silently read letters as keypad digits and drop extensions.
            raise InvalidNumber(MSG_CHARACTERS)
    return "".join(out)


def _parse_error_message(error: NumberParseException) -> str:
    if error.error_type == NumberParseException.INVALID_COUNTRY_CODE:
        return MSG_COUNTRY_CODE
    if error.error_type == NumberParseException.TOO_LONG:
        return MSG_TOO_LONG
    if error.error_type in (
        NumberParseException.TOO_SHORT_NSN,
        NumberParseException.TOO_SHORT_AFTER_IDD,
    ):
        return MSG_TOO_SHORT
    return MSG_NOT_A_NUMBER


def _where(number: phonenumbers.PhoneNumber, selected: str | None) -> str:
    """Name the country a number claims to belong to, for a message."""
    code = number.country_code
    if selected is not None and phonenumbers.country_code_for_region(selected) == code:
        return _country_name(selected, "en")
    # None when the code is shared (+44, +7) and no sharer's pattern fits:
    # naming the main one could name the wrong country.
    region = phonenumbers.region_code_for_number(number)
    if region in phonenumbers.SUPPORTED_REGIONS:
        return _country_name(region, "en")
    return f"country code +{code}"


def parse_phone(raw: str, region: str) -> PhoneNumber:
    """Parse what a person typed; raise InvalidNumber with a clear message."""
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidNumber(MSG_EMPTY)
    if len(raw) > MAX_INPUT_CHARS:
        raise InvalidNumber(MSG_TOO_LONG)
    cleaned = _clean(raw)
    digit_count = len(cleaned.lstrip("+"))
    if digit_count == 0:
        raise InvalidNumber(MSG_EMPTY if not cleaned else MSG_TOO_SHORT)
    if digit_count > MAX_DIGITS:
        raise InvalidNumber(MSG_TOO_LONG)
    if digit_count < MIN_DIGITS:
        raise InvalidNumber(MSG_TOO_SHORT)

    selected = region.strip().upper() if isinstance(region, str) else ""
    known = selected if selected in phonenumbers.SUPPORTED_REGIONS else None
    if known is None and not cleaned.startswith("+"):
        raise InvalidNumber(MSG_NO_REGION)
    try:
        number = phonenumbers.parse(cleaned, known)
    except NumberParseException as error:
        raise InvalidNumber(_parse_error_message(error)) from None
    if not phonenumbers.is_valid_number(number):
        raise InvalidNumber(f"That doesn't look like a valid number for {_where(number, known)}.")
    region_of_number = phonenumbers.region_code_for_number(number)
    assert region_of_number is not None, "a valid number has a region (001 for the international networks)"
    return PhoneNumber(
        e164=phonenumbers.format_number(number, PhoneNumberFormat.E164),
        region=region_of_number,
        international=phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL),
        number_type=phonenumbers.number_type(number),
    )


def format_international(e164: str) -> str:
    """The pretty international form of an E.164 number, or the input unchanged."""
    if not isinstance(e164, str) or len(e164) > MAX_INPUT_CHARS:
        return e164
    try:
        number = phonenumbers.parse(e164, None)
    except NumberParseException:
        return e164
    return phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL)


def number_from_e164(e164: str) -> PhoneNumber:
    """A stored E.164 number, parsed again (its type and region may matter to policy)."""
    number = phonenumbers.parse(e164, None)
    return PhoneNumber(
        e164=e164,
        region=phonenumbers.region_code_for_number(number) or "001",
        international=phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL),
        number_type=phonenumbers.number_type(number),
    )


# The country select


@dataclass(frozen=True, slots=True)
class Country:
    """One entry of the country select."""

    region: str
    name: str
    calling_code: int


_territory_cache: dict[str, dict[str, str]] = {}


def _territories(locale: str) -> dict[str, str]:
    # Bounded by the locales the app is configured with, and read at start-up.
    names = _territory_cache.get(locale)
    if names is None:
        names = dict(babel.Locale.parse(locale.replace("-", "_")).territories)
        _territory_cache[locale] = names
    return names


def _country_name(region: str, locale: str) -> str:
    return _territories(locale).get(region) or region


def _sort_key(name: str) -> str:
    decomposed = unicodedata.normalize("NFKD", name)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()


def countries(locale: str = "en") -> tuple[Country, ...]:
    """Every region phonenumbers supports, named from Babel's CLDR data, sorted by name."""
    found = [
        Country(region, _country_name(region, locale), phonenumbers.country_code_for_region(region))
        for region in phonenumbers.SUPPORTED_REGIONS
    ]
    return tuple(sorted(found, key=lambda c: (_sort_key(c.name), c.region)))


class CountryOptions:
    """The <option> list of the country select for one locale, rendered once."""

    def __init__(self, locale: str = "en") -> None:
        self.locale = locale
        self._countries = {c.region: c for c in countries(locale)}
        self._options = {
            c.region: (
                f'<option value="{markupsafe.escape(c.region)}">'
                f"{markupsafe.escape(c.name)} (+{c.calling_code})</option>"
            )
            for c in self._countries.values()
        }
        self._all = "".join(self._options.values())
        self._none_selected = markupsafe.Markup(self._all)  # noqa: S704 - every name and code escaped above
        # Keyed only by known regions, so it can never grow past the list itself.
        self._selected: dict[str, markupsafe.Markup] = {}

    def html(self, selected: str) -> markupsafe.Markup:
        """The options, with `selected` marked; an unknown region selects nothing."""
        cached = self._selected.get(selected)
        if cached is not None:
            return cached
        option = self._options.get(selected)
        if option is None:
            return self._none_selected
        marked = option.replace('">', '" selected>', 1)
        # On the plain str: Markup.replace would escape its arguments.
        cached = markupsafe.Markup(self._all.replace(option, marked, 1))  # noqa: S704 - escaped above
        self._selected[selected] = cached
        return cached

    def __contains__(self, region: object) -> bool:
        return region in self._countries

    def name(self, region: str) -> str:
        """The country's name in this locale, or the region code if it has none."""
        country = self._countries.get(region)
        return country.name if country is not None else _country_name(region, self.locale)
