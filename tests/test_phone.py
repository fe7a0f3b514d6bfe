"""Parsing phone numbers as people type them, and the country select."""

from __future__ import annotations

import random

import markupsafe
import phonenumbers
import pytest

from webapp.errors import Refusal
from webapp.phone import (
    MAX_INPUT_CHARS,
    Country,
    CountryOptions,
    InvalidNumber,
    PhoneNumber,
    countries,
    format_international,
    parse_phone,
)

NL_MOBILE = "+31612345678"


def refusal_message(raw: str, region: str = "NL") -> str:
    with pytest.raises(InvalidNumber) as caught:
        parse_phone(raw, region)
    return caught.value.message


@pytest.mark.parametrize("raw", ["0612345678", "612345678"])
def test_national_number_with_or_without_trunk_zero(raw: str) -> None:
    assert parse_phone(raw, "NL").e164 == NL_MOBILE


def test_parsed_number_has_every_form() -> None:
    number = parse_phone("06 12345678", "NL")
    assert number == PhoneNumber(
        e164=NL_MOBILE,
        region="NL",
        international="+31 6 12345678",
        number_type=phonenumbers.PhoneNumberType.MOBILE,
    )
    assert number.digits == "31612345678"


def test_international_number_overrides_the_selected_country() -> None:
    number = parse_phone("+44 7400 123456", "NL")
    assert (number.e164, number.region) == ("+447400123456", "GB")


def test_international_number_needs_no_country() -> None:
    assert parse_phone("+31 6 12345678", "").e164 == NL_MOBILE


def test_double_zero_international_prefix() -> None:
    assert parse_phone("0031 6 1234 5678", "NL").e164 == NL_MOBILE


def test_lower_case_region_is_accepted() -> None:
    assert parse_phone("0612345678", "nl").e164 == NL_MOBILE


@pytest.mark.parametrize(
    "raw",
    [
        "06 1234 5678",
        "06-1234-5678",
        "06.12.34.56.78",
        "(06) 12345678",
        "06/12345678",
        "06\u00a01234\u00a05678",  # no-break spaces
        "06\u20091234\u20095678",  # thin spaces
        "06\u20131234\u20145678",  # en and em dashes
        " \t0612345678 ",
        "\u202a+31 6 12345678\u202c",  # bidi embedding, as iOS copies numbers
    ],
)
def test_formatting_characters_are_ignored(raw: str) -> None:
    assert parse_phone(raw, "NL").e164 == NL_MOBILE


@pytest.mark.parametrize(
    "raw",
    [
        "٠٦١٢٣٤٥٦٧٨",  # Arabic-Indic
        "۰۶۱۲۳۴۵۶۷۸",  # Extended Arabic-Indic
        "०६१२३४५६७८",  # Devanagari
        "０６１２３４５６７８",  # full-width
        "＋３１ ６ １２３４５６７８",  # full-width plus
    ],
)
def test_non_ascii_digits_are_read(raw: str) -> None:
    assert parse_phone(raw, "NL").e164 == NL_MOBILE


@pytest.mark.parametrize("raw", ["1-800-FLOWERS", "06123456ab", "0612345678é"])
def test_letters_are_refused(raw: str) -> None:
    assert refusal_message(raw, "US") == ("Phone numbers can contain only digits, spaces and + - . ( ) /.")


@pytest.mark.parametrize(
    "raw",
    [
        "0612345678 ext 99",
        "0612345678 x99",
        "0612345678#",
        "0612345678;ext=99",
        "*31#0612345678",
        "0612345678,99",
    ],
)
def test_extensions_are_refused(raw: str) -> None:
    assert refusal_message(raw) == ("Phone numbers can contain only digits, spaces and + - . ( ) /.")


@pytest.mark.parametrize("raw", ["++31612345678", "+31 +612345678", "0612+345678"])
def test_plus_anywhere_but_the_start_is_refused(raw: str) -> None:
    assert refusal_message(raw) == "Use only one + at the start of the number."


@pytest.mark.parametrize("raw", ["1" * 18, "+" + "3" * 17 + "1", "0" * (MAX_INPUT_CHARS + 1)])
def test_too_long_is_refused(raw: str) -> None:
    assert refusal_message(raw) == "That is too long for a phone number."


def test_too_many_characters_is_refused_even_if_mostly_spaces() -> None:
    raw = "0612345678" + " " * MAX_INPUT_CHARS
    assert refusal_message(raw) == "That is too long for a phone number."


@pytest.mark.parametrize("raw", ["1", "123", "+31", "(0)-6"])
def test_too_short_is_refused(raw: str) -> None:
    assert refusal_message(raw) == "That is too short for a phone number."


@pytest.mark.parametrize("raw", ["+31 6 123", "0612", "06 1234 567"])
def test_invalid_for_the_country_names_the_country(raw: str) -> None:
    assert refusal_message(raw) == "That doesn't look like a valid number for Netherlands."


def test_invalid_international_number_names_its_own_country() -> None:
    message = refusal_message("+33 1234", "NL")
    assert message == "That doesn't look like a valid number for France."


def test_invalid_number_in_a_shared_country_code_names_the_code() -> None:
    message = refusal_message("+44 12", "")
    assert message == "That doesn't look like a valid number for country code +44."


def test_invalid_number_named_by_its_area_code_when_that_tells() -> None:
    message = refusal_message("+1 876 123", "")
    assert message == "That doesn't look like a valid number for Jamaica."


def test_invalid_number_in_a_shared_country_code_names_the_selected_country() -> None:
    message = refusal_message("+1 876 123", "CA")
    assert message == "That doesn't look like a valid number for Canada."


def test_unknown_country_code_is_refused() -> None:
    assert "country code" in refusal_message("+999 1234 5678", "")


@pytest.mark.parametrize("raw", ["", "   ", "\u00a0\u2009"])
def test_empty_is_refused(raw: str) -> None:
    assert refusal_message(raw) == "Type your phone number."


@pytest.mark.parametrize("region", ["", "XX", "001", "nl-NL"])
def test_missing_country_without_plus_is_refused(region: str) -> None:
    assert refusal_message("0612345678", region) == ("Choose a country, or type the number with its + country code.")


def test_refusal_carries_outcome_field_and_the_tables_form_and_status() -> None:
    with pytest.raises(Refusal) as caught:
        parse_phone("", "NL")
    refusal = caught.value
    assert isinstance(refusal, InvalidNumber)
    assert (refusal.outcome, refusal.told.form, refusal.status_code, refusal.field, refusal.pending) == (
        "invalid_number",
        "current",
        422,
        "phone",
        None,
    )


def test_a_refusal_is_never_changed_after_it_is_made() -> None:
    with pytest.raises(Refusal) as caught:
        parse_phone("", "NL")
    refusal = caught.value
    with pytest.raises(AttributeError, match="not changed"):
        refusal.pending = None  # type: ignore[misc]  # Final: what this test shows is refused at run time too
    shown = refusal.showing(None)
    assert shown is not refusal and isinstance(shown, InvalidNumber)
    assert (shown.outcome, shown.message, shown.field) == (refusal.outcome, refusal.message, refusal.field)


def _nasty_strings() -> list[str]:
    fixed = [
        "\x00",
        "0612\x00345678",
        "\ud800",
        "06\udfff12345678",
        "\u200f0612345678\u200e",
        "\u202e8765432160",
        "📞 0612345678",
        "0612345678🇳🇱",
        "'; DROP TABLE attempts; --",
        '"0612345678"',
        "<script>alert(1)</script>",
        "9" * 10_000,
        "+" * 10_000,
        " " * 10_000,
        "\u0663" * 64,
        "+\u00b2\u00b3",  # superscripts are digits but not decimal digits
        "①②③④",
        "tel:+31612345678",
        "+31612345678;phone-context=+31",
        "\r\n0612345678\x0b",
        "\x1c\x1d\x1e\x1f",
        "𝟎𝟔𝟏𝟐𝟑𝟒𝟓𝟔𝟕𝟖",  # mathematical bold digits
    ]
    rng = random.Random(2024)
    alphabet = "0123456789+ -.()/#*x;,\u00a0\u0660\uff10\uff0b\u2212\ud800\x00é📞"
    fuzzed = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40))) for _ in range(2000)]
    wild = ["".join(chr(rng.randint(0, 0x10FFFF)) for _ in range(12)) for _ in range(500)]
    return fixed + fuzzed + wild


def test_nasty_strings_only_ever_raise_invalid_number() -> None:
    for raw in _nasty_strings():
        for region in ("NL", "US", "", "001", "\ud800"):
            try:
                number = parse_phone(raw, region)
            except InvalidNumber as refusal:
                assert refusal.message  # noqa: PT017 - thousands of inputs, each raising or not
            else:
                assert phonenumbers.is_valid_number(phonenumbers.parse(number.e164))


@pytest.mark.parametrize(
    ("e164", "pretty"),
    [(NL_MOBILE, "+31 6 12345678"), ("not a number", "not a number"), ("", "")],
)
def test_format_international(e164: str, pretty: str) -> None:
    assert format_international(e164) == pretty


def test_countries_cover_every_supported_region() -> None:
    listed = countries()
    assert 230 <= len(listed) <= 260
    assert {c.region for c in listed} == phonenumbers.SUPPORTED_REGIONS


def test_countries_name_the_netherlands_with_its_calling_code() -> None:
    assert Country("NL", "Netherlands", 31) in countries()


def test_countries_are_sorted_by_name_with_accents_folded() -> None:
    names = [c.name for c in countries()]
    assert names.index("Åland Islands") < names.index("Albania")
    assert names[0].startswith("A") and names[-1] == "Zimbabwe"


def test_countries_are_named_in_the_locale() -> None:
    assert Country("NL", "Nederland", 31) in countries("nl")


def test_options_mark_exactly_one_selected() -> None:
    html = CountryOptions().html("NL")
    assert isinstance(html, markupsafe.Markup)
    assert html.count(" selected") == 1
    assert '<option value="NL" selected>Netherlands (+31)</option>' in html
    assert html.count("<option ") == len(phonenumbers.SUPPORTED_REGIONS)


def test_options_escape_country_names() -> None:
    html = CountryOptions().html("")
    assert "Trinidad &amp; Tobago (+1)" in html
    assert "& " not in html


@pytest.mark.parametrize("region", ["", "XX", "001", '"><script>', "nl"])
def test_options_for_unknown_region_select_none(region: str) -> None:
    assert " selected" not in CountryOptions().html(region)


def test_options_are_cached_per_selection() -> None:
    options = CountryOptions()
    assert options.html("NL") is options.html("NL")
    assert options.html("") is options.html("XX")


def test_options_know_their_regions_and_names() -> None:
    options = CountryOptions()
    assert "NL" in options and "XX" not in options
    assert options.name("NL") == "Netherlands"
    assert options.name("XX") == "XX"
