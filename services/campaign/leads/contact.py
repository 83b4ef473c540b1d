"""Validate and normalise contact data fast enough for a million-row import.

Emails: an ASCII fast path (a dot-atom local part checked by a regex, the domain validated
once by email-validator and cached) that gives exactly what email-validator gives, and
email-validator itself for everything else. Phones: phonenumbers, parsed once, with the
number type computed once for both validity and time zone inference.
"""

from __future__ import annotations

import re
import unicodedata
import zoneinfo
from functools import lru_cache

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from email_validator.rfc_constants import CASE_INSENSITIVE_MAILBOX_NAMES
from phonenumbers import PhoneNumber, PhoneNumberFormat, PhoneNumberType
from phonenumbers.phonenumberutil import is_number_type_geographical
from phonenumbers.timezone import UNKNOWN_TIMEZONE
from phonenumbers.tzdata import TIMEZONE_DATA, TIMEZONE_LONGEST_PREFIX

from libs.suppression import InvalidContact, validate_email_address

_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\-\u00c0-\uffff]"
_FAST_EMAIL = re.compile(rf"({_ATEXT}+(?:\.{_ATEXT}+)*)@([^@\s\"<>()\[\]\\,;:]+)")
_MAILBOX_NAMES = frozenset(CASE_INSENSITIVE_MAILBOX_NAMES)
_DOMAIN_CACHE_SIZE = 50_000
_UNKNOWN = PhoneNumberType.UNKNOWN
_NANP_E164 = re.compile(r"\+1([2-9]\d{9})")


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
        self._nanp_regions: dict[str, str] = {}

    def email(self, value: str) -> tuple[str, str]:
        """Return ``(email, email_normalized)`` or raise :class:`InvalidContact`."""
        text = value.strip()
        match = _FAST_EMAIL.fullmatch(text)
        if match is None or not _plain_local(local := match.group(1)):
            return validate_email_address(text)
        domain = self._domain(match.group(2))
        if local.isascii() and local.lower() in _MAILBOX_NAMES:
            local = local.lower()
        email = f"{local}@{domain}"
        if len(local.encode()) > 64 or len(email.encode()) > 254:
            return validate_email_address(text)
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
        nanp = _NANP_E164.fullmatch(value.strip())
        if nanp is not None:
            return self._nanp(nanp.group(1))
        try:
            number = phonenumbers.parse(value, self.default_region)
        except phonenumbers.NumberParseException as exc:
            raise InvalidContact(f"The phone number cannot be parsed: {exc}.") from exc
        kind = phonenumbers.number_type(number)
        if kind == _UNKNOWN:
            raise InvalidContact("The phone number is not a valid number.")
        e164 = phonenumbers.format_number(number, PhoneNumberFormat.E164)
        geographic = is_number_type_geographical(kind, number.country_code or 0)
        return e164, _zone_for_prefix(e164[1:] if geographic else str(number.country_code))

    def _nanp(self, national: str) -> tuple[str, str | None]:
        """Validate an E.164 NANP number; its area code decides its region, so the region is cached per area code."""
        number = PhoneNumber(country_code=1, national_number=int(national))
        region = self._nanp_regions.get(national[:3])
        if region is None:
            region = phonenumbers.region_code_for_number(number)
            if region is None:
                raise InvalidContact("The phone number is not a valid number.")
            self._nanp_regions[national[:3]] = region
        if not phonenumbers.is_valid_number_for_region(number, region):
            raise InvalidContact("The phone number is not a valid number.")
        return "+1" + national, _zone_for_prefix("1" + national)


def _plain_local(local: str) -> bool:
    """Whether a dot-atom local part needs nothing from email-validator but a yes (letters only beyond ASCII)."""
    if local.isascii():
        return True
    return all(c.isascii() or c.isalpha() for c in local) and unicodedata.is_normalized("NFC", local)


def _zone_for_prefix(digits: str) -> str | None:
    """The single time zone the phonenumbers data gives the longest matching prefix, if only one."""
    for length in range(min(TIMEZONE_LONGEST_PREFIX, len(digits)), 0, -1):
        zones = TIMEZONE_DATA.get(digits[:length])
        if zones is not None:
            return zones[0] if len(zones) == 1 and zones[0] != UNKNOWN_TIMEZONE else None
    return None
