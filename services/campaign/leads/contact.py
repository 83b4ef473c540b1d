"""Validate and normalise contact data fast enough for a million-row import.

Emails: an ASCII fast path (a dot-atom local part checked by a regex, the domain validated
once by email-validator and cached) that gives exactly what email-validator gives, and
email-validator itself for everything else. Phones: numbers already in NANP E.164 form
(``+1`` and ten digits, most of a North American list) are checked against phonenumbers'
own metadata compiled once into one pattern per region; everything else is parsed by
phonenumbers, with the number type computed once for both validity and time zone inference.
Tests hold both fast paths to the libraries' answers.
"""

from __future__ import annotations

import re
import unicodedata
import zoneinfo
from functools import lru_cache

import dns.nameserver
import dns.resolver
import phonenumbers
from email_validator import EmailNotValidError, caching_resolver, validate_email
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
_NANP_E164 = re.compile(r"\+1([2-9][0-9]{9})")
_NUMBER_TYPES = (
    "premium_rate",
    "toll_free",
    "shared_cost",
    "voip",
    "personal_number",
    "pager",
    "uan",
    "voicemail",
    "fixed_line",
    "mobile",
)
"""The descriptions phonenumbers tries, in its order: a number of none of them is ``UNKNOWN`` (invalid)."""
_ZONE_CACHE_SIZE = 200_000


@lru_cache(maxsize=64)
def _region_pattern(region: str, length: int) -> re.Pattern[str] | None:
    """One pattern a national number of ``length`` digits fully matches iff phonenumbers calls it valid for ``region``.

    phonenumbers' ``is_valid_number_for_region``: the general description must match, then at
    least one number type (each gated by its possible lengths). Both become one compiled
    lookahead-and-alternation, so validity is one regex call instead of a dozen.
    """
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    if metadata is None:
        return None

    def usable(desc: phonenumbers.PhoneNumberDesc | None) -> str | None:
        if desc is None or not desc.national_number_pattern:
            return None
        if desc.possible_length and length not in desc.possible_length:
            return None
        return desc.national_number_pattern

    general = usable(metadata.general_desc)
    types = [p for name in _NUMBER_TYPES if (p := usable(getattr(metadata, name))) is not None]
    if general is None or not types:
        return None
    return re.compile(f"(?=(?:{general})$)(?:{'|'.join(f'(?:{p})' for p in types)})")


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

    def __init__(self, default_region: str = "US", *, resolver: dns.resolver.Resolver | None = None) -> None:
        """``resolver``: also require each email domain to accept mail (MX, else A/AAAA; null MX refused)."""
        self.default_region = default_region.upper()
        self.resolver = resolver
        self._domains: dict[str, str | InvalidContact] = {}
        self._nanp_regions: dict[str, str] = {}
        self._zones: dict[str, str | None] = {}

    def email(self, value: str) -> tuple[str, str]:
        """Return ``(email, email_normalized)`` or raise :class:`InvalidContact`."""
        text = value.strip()
        match = _FAST_EMAIL.fullmatch(text)
        if match is None or not _plain_local(local := match.group(1)):
            email, normalized = validate_email_address(text)
            if self.resolver is not None:
                self._domain(email.rpartition("@")[2])
            return email, normalized
        domain = self._domain(match.group(2))
        if local.isascii():
            if local.lower() in _MAILBOX_NAMES:
                local = local.lower()
            email = f"{local}@{domain}"
            too_long = len(local) > 64 or (len(email) > 254 and len(email.encode()) > 254)
        else:
            email = f"{local}@{domain}"
            too_long = len(local.encode()) > 64 or len(email.encode()) > 254
        if too_long:
            return validate_email_address(text)
        return email, email.lower()

    def _domain(self, domain: str) -> str:
        found = self._domains.get(domain)
        if found is None:
            try:
                found = validate_email(
                    f"a@{domain}", check_deliverability=self.resolver is not None, dns_resolver=self.resolver
                ).domain
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
        region = self._nanp_regions.get(national[:3])
        if region is None:
            region = phonenumbers.region_code_for_number(PhoneNumber(country_code=1, national_number=int(national)))
            if region is None:
                raise InvalidContact("The phone number is not a valid number.")
            self._nanp_regions[national[:3]] = region
        pattern = _region_pattern(region, len(national))
        if pattern is None or pattern.fullmatch(national) is None:
            raise InvalidContact("The phone number is not a valid number.")
        digits = "1" + national
        key = digits[: _nanp_zone_prefix_lengths().get(digits[:4], 4)]
        try:
            zone = self._zones[key]
        except KeyError:
            if len(self._zones) >= _ZONE_CACHE_SIZE:
                self._zones.clear()
            zone = self._zones[key] = _zone_for_prefix(key)
        return "+" + digits, zone


def mx_resolver(nameservers: list[str], timeout: float) -> dns.resolver.Resolver:
    """A caching resolver for MX checks: ``nameservers`` (``host`` or ``host:port``), else the system's."""
    if not nameservers:
        return caching_resolver(timeout=timeout)  # type: ignore[arg-type]
    resolver = dns.resolver.Resolver(configure=False)
    servers: list[str | dns.nameserver.Nameserver] = []
    for entry in nameservers:
        host, _, port = entry.rpartition(":") if entry.count(":") == 1 else (entry, "", "")
        servers.append(dns.nameserver.Do53Nameserver(host, int(port)) if port else host)
    resolver.nameservers = servers
    return caching_resolver(timeout=timeout, dns_resolver=resolver)  # type: ignore[arg-type]


def _plain_local(local: str) -> bool:
    """Whether a dot-atom local part needs nothing from email-validator but a yes (letters only beyond ASCII)."""
    if local.isascii():
        return True
    return all(c.isascii() or c.isalpha() for c in local) and unicodedata.is_normalized("NFC", local)


@lru_cache(maxsize=1)
def _nanp_zone_prefix_lengths() -> dict[str, int]:
    """For ``1`` + area code, the longest time zone prefix under it: the digits that decide its zone.

    ``_zone_for_prefix`` looks for the longest prefix of a number in the data; every prefix
    longer than four digits starts with ``1`` + the area code, so a number's zone depends on
    no more digits than this (four when the area code has no longer prefix).
    """
    lengths: dict[str, int] = {}
    for prefix in TIMEZONE_DATA:
        if len(prefix) > 4 and prefix.startswith("1"):
            lengths[prefix[:4]] = max(lengths.get(prefix[:4], 4), len(prefix))
    return lengths


def _zone_for_prefix(digits: str) -> str | None:
    """The single time zone the phonenumbers data gives the longest matching prefix, if only one."""
    for length in range(min(TIMEZONE_LONGEST_PREFIX, len(digits)), 0, -1):
        zones = TIMEZONE_DATA.get(digits[:length])
        if zones is not None:
            return zones[0] if len(zones) == 1 and zones[0] != UNKNOWN_TIMEZONE else None
    return None
