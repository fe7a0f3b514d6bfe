"""What an operator typed into the attempts filters, read once into `Filters` (an `AttemptFilter` and more).

Everything here reaches SQL or datetime arithmetic, so every value is checked
and bounded first: a hostile link gets a 400 that says what was wrong, never
a 500 from the database (PostgreSQL refuses NUL in text) or from Python (a
time that overflows on its way to UTC, or in the summary's buckets). Page
links (`reports.Cursor.parse`) are bounded the same way.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from starlette.datastructures import QueryParams

from webapp import denylist, reports
from webapp.phone import InvalidNumber, parse_phone
from webapp.provider import NAMES
from webapp.reports import EARLIEST, LATEST, AttemptFilter, Cursor

_COUNTRY = re.compile(r"[A-Z]{2}|001")
#: client ids are `secrets.token_hex(16)`; the filter takes nothing that could not be one
_CLIENT = re.compile(r"[0-9a-f]{32}", re.ASCII)


class FilterError(ValueError):
    """A filter the operator typed that can't be used; the message says why."""


@dataclass(frozen=True)
class Filters:
    """A query's filter, the form's values to show again, what could not be used, and the page asked for."""

    where: AttemptFilter
    form: dict[str, Any]
    errors: list[str] = field(default_factory=list)
    before: Cursor | None = None
    after: Cursor | None = None

    @classmethod
    def from_query(cls, params: QueryParams, default_region: str, now: datetime, *, paged: bool = False) -> Filters:
        """Read the filters of `params`; with `paged`, also the page link (`before` or `after`)."""
        where, form, errors = read(params, default_region, now)
        before = after = None
        if paged:
            try:
                if params.get("before"):
                    before = Cursor.parse(params["before"])
                elif params.get("after"):
                    after = Cursor.parse(params["after"])
            except ValueError:
                errors.append("That page link is broken; showing the newest attempts.")
        return cls(where, form, errors, before, after)

    @property
    def status_code(self) -> int:
        """400 when something typed could not be used (the page still shows what could)."""
        return 400 if self.errors else 200

    @property
    def query(self) -> str:
        """The filters as a query string, for the page's links."""
        return query(self.form)

    def context(self) -> dict[str, Any]:
        """What every filtered page's template reads of the filters: the form, the errors, the links' query."""
        return {"form": self.form, "errors": self.errors, "query": self.query}


def parse_network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """An IP address or CIDR the filter can serve efficiently."""
    try:
        # A zone ("fe80::1%eth0") is never part of a stored address, and may hold anything, NUL included.
        if "%" in text:
            raise ValueError(text)
        network = ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise FilterError(
            f"“{text[:60]}” is not an IP address or network (like 203.0.113.7 or 203.0.113.0/24)."
        ) from None
    if network.version == 4 and network.prefixlen < 8:
        raise FilterError("IPv4 networks wider than /8 can't be filtered.")
    if network.version == 6 and network.num_addresses > 256:
        raise FilterError("IPv6 networks can be filtered up to 256 addresses (/120 or longer).")
    return network


def parse_time(text: str, name: str) -> datetime:
    """A `datetime-local` value (or one with an offset), as UTC."""
    try:
        moment = datetime.fromisoformat(text.strip())
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except (ValueError, OverflowError):
        raise FilterError(f"“{text[:40]}” is not a time for “{name}” (like 2026-11-26T14:00).") from None
    if not EARLIEST <= moment < LATEST:
        raise FilterError(f"“{text[:40]}” is out of range for “{name}”: give a time from 1970 to 2999.")
    return moment


def check_country(text: str) -> str:
    """A region code as phonenumbers writes it: "NL", or "001" for the international networks."""
    country = text.strip().upper()
    if not _COUNTRY.fullmatch(country):
        raise FilterError(f"“{text[:10]}” is not a country code (like NL).")
    return country


def check_client(text: str) -> str:
    """A hand-off site's client_id, as `voice2fa client list` shows it."""
    client_id = text.strip().lower()
    if not _CLIENT.fullmatch(client_id):
        raise FilterError(f"“{text[:40]}” is not a site's client id (32 hex digits, as `voice2fa client list` shows).")
    return client_id


def check_provider(text: str) -> str:
    """A provider's name, as PROVIDERS spells it."""
    name = text.strip().lower()
    if name not in NAMES:
        raise FilterError(f"“{text[:20]}” is not a provider ({', '.join(NAMES)}).")
    return name


def read(params: QueryParams, default_region: str, now: datetime) -> tuple[AttemptFilter, dict[str, Any], list[str]]:
    """The filter the query asks for, the form's values, and what could not be used."""
    errors: list[str] = []
    form: dict[str, Any] = {
        "number": params.get("number", "")[:40],
        "ip": params.get("ip", "")[:50],
        "outcome": [o for o in params.getlist("outcome") if o in reports.OUTCOMES],
        "kind": [k for k in params.getlist("kind") if k in reports.KINDS],
        "country": params.get("country", "")[:3],
        "client": params.get("client", "")[:40],
        "provider": params.get("provider", "")[:20],
        "period": params.get("period", reports.DEFAULT_PERIOD),
        "since": params.get("since", "")[:30],
        "until": params.get("until", "")[:30],
    }
    if len(form["outcome"]) != len(params.getlist("outcome")):
        errors.append("Unknown outcomes were left out.")
    if form["period"] not in reports.PERIODS:
        errors.append(f"“{form['period'][:20]}” is not a period; showing the last 24 hours.")
        form["period"] = reports.DEFAULT_PERIOD
    fields: dict[str, Any] = {"outcomes": tuple(form["outcome"]), "kinds": tuple(form["kind"])}
    number = form["number"].strip()
    if number:
        try:
            if number.endswith("*"):
                fields["number_prefix"] = denylist.parse_entry(number).value
            else:
                fields["number"] = parse_phone(number, default_region).e164
        except (InvalidNumber, ValueError) as exc:
            errors.append(f"Number: {getattr(exc, 'message', None) or exc}")
    for name, parse, target in (
        ("ip", parse_network, "network"),
        ("country", check_country, "country"),
        ("client", check_client, "client_id"),
        ("provider", check_provider, "provider"),
        ("since", lambda text: parse_time(text, "from"), "since"),
        ("until", lambda text: parse_time(text, "until"), "until"),
    ):
        if form[name].strip():
            try:
                fields[target] = parse(form[name])
            except FilterError as exc:
                errors.append(str(exc))
    if "since" not in fields and "until" not in fields:
        span = reports.PERIODS[form["period"]]
        fields["since"] = now - span if span else None
    return AttemptFilter(**fields), form, errors


def query(form: dict[str, Any], **extra: str) -> str:
    """The form's values (and `extra`) as a query string, for the page's links."""
    pairs = [
        (key, value)
        for key, values in form.items()
        for value in (values if isinstance(values, list) else [values])
        if value
    ]
    pairs += [(key, value) for key, value in extra.items() if value]
    return urlencode(pairs)
