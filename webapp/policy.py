"""Number policy: which numbers voice2fa will call at all.

Premium-rate, shared-cost and the like are where toll fraud pays out
("pumping"), so they are refused before any limit is counted. So are the
non-geographic "international networks" (satellite phones such as Inmarsat
+870 and Iridium +881, and the +882/+883 networks), unless allowed: among the
costliest destinations there are, and seldom the number of a person signing up.
"""

from __future__ import annotations

import phonenumbers

from webapp.errors import Refusal
from webapp.outcomes import Outcome
from webapp.phone import NUMBER_TYPES, PhoneNumber
from webapp.settings import Settings

#: The region phonenumbers gives numbers of no country ("001").
INTERNATIONAL_NETWORKS = phonenumbers.REGION_CODE_FOR_NON_GEO_ENTITY


def check_number(number: PhoneNumber, settings: Settings) -> None:
    """Raise a Refusal if policy forbids calling `number`."""
    if number.region == INTERNATIONAL_NETWORKS and not settings.allow_international_networks:
        raise Refusal(Outcome.BLOCKED_NUMBER_TYPE, field="phone")
    if settings.allowed_countries and number.region not in settings.allowed_countries:
        raise Refusal(Outcome.BLOCKED_COUNTRY, field="phone")
    if number.region in settings.denied_countries:
        raise Refusal(Outcome.BLOCKED_COUNTRY, field="phone")
    blocked = {NUMBER_TYPES[name] for name in settings.blocked_number_types}
    if not settings.allow_voip:
        blocked.add(NUMBER_TYPES["voip"])
    if number.number_type in blocked:
        raise Refusal(Outcome.BLOCKED_NUMBER_TYPE, field="phone")
