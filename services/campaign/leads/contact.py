"""Validate and normalise contact data fast enough for a million-row import.

Emails: an ASCII fast path (a dot-atom local part checked by a regex, the domain validated
once by email-validator and cached) that gives exactly what email-validator gives, and
email-validator itself for everything else. Phones: phonenumbers, parsed once, with the
number type computed once for both validity and time zone inference.
"""

from __future__ import annotations

import re
import zoneinfo
from functools import lru_cache

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from phonenumbers import PhoneNumberFormat, PhoneNumberType
from phonenumbers.phonenumberutil import is_number_type_geographical
from phonenumbers.timezone import UNKNOWN_TIMEZONE
from phonenumbers.tzdata import TIMEZONE_DATA, TIMEZONE_LONGEST_PREFIX

from libs.suppression import InvalidContact, validate_email_address

_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_FAST_EMAIL = re.compile(rf"({_ATEXT}+(?:\.{_ATEXT}+)*)@([A-Za-z0-9.-]+)")
_DOMAIN_CACHE_SIZE = 50_000
_UNKNOWN = PhoneNumberType.UNKNOWN


@lru_cache(maxsize=1)
def _zones() -> dict[str, str]:
    return {name.lower(): name for name in zoneinfo.available_timezones()}


def normalize_timezone(value: str) -> str:
    """Return the canonical IANA name of ``value`` (case-insensitive), or raise :class:`InvalidContact`."""
    name = _zones().get(value.strip().lower())
    if name is None:
        raise InvalidContact("Not a known IANA time zone (for example Europe/Paris).")
    return name


class ContactValidator:
    """Normalise emails, phones and time zones for one default region, with per-domain caching."""

    def __init__(self, default_region: str = "US") -> None:
        self.default_region = default_region.upper()
        self._domains: dict[str, str | InvalidContact] = {}

    def email(self, value: str) -> tuple[str, str]:
        """Return ``(email, email_normalized)`` or raise :class:`InvalidContact`."""
        text = value.strip()
        match = _FAST_EMAIL.fullmatch(text)
        if match is None or len(match.group(1)) > 64 or len(text) > 254:
            return validate_email_address(text)
        domain = self._domain(match.group(2))
        email = f"{match.group(1)}@{domain}"
        return email, email.lower()

    def _domain(self, domain: str) -> str:
        found = self._domains.get(domain)
        if found is None:
            try:
                found = validate_email(f"a@{domain}", check_deliverability=False).domain
            except EmailNotValidError as exc:
                found = InvalidContact(str(exc))
            if len(self._domains) >= _DOMAIN_CACHE_SIZE:
                self._domains.clear()
            self._domains[domain] = found
        if isinstance(found, InvalidContact):
            raise InvalidContact(str(found))
        return found

    def phone(self, value: str) -> tuple[str, str | None]:
        """Return ``(E.164 number, time zone inferred from it or None)`` or raise :class:`InvalidContact`."""
        try:
            number = phonenumbers.parse(value, self.default_region)
        except phonenumbers.NumberParseException as exc:
            raise InvalidContact(f"The phone number cannot be parsed: {exc}.") from exc
        kind = phonenumbers.number_type(number)
        if kind == _UNKNOWN:
            raise InvalidContact("The phone number is not a valid number.")
        e164 = phonenumbers.format_number(number, PhoneNumberFormat.E164)
        digits = e164[1:] if is_number_type_geographical(kind, number.country_code or 0) else str(number.country_code)
        return e164, _zone_for_prefix(digits)


def _zone_for_prefix(digits: str) -> str | None:
    """The single time zone the phonenumbers data gives the longest matching prefix, if only one."""
    for length in range(min(TIMEZONE_LONGEST_PREFIX, len(digits)), 0, -1):
        zones = TIMEZONE_DATA.get(digits[:length])
        if zones is not None:
            return zones[0] if len(zones) == 1 and zones[0] != UNKNOWN_TIMEZONE else None
    return None
