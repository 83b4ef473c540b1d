"""Calling hours for SMS and voicemail: 08:00-21:00 recipient-local, stricter where a US state says so.

47 CFR 64.1200(c)(1) forbids telephone solicitations before 8 a.m. or after 9 p.m. at the
called party's location, and the FCC treats texts as calls. Several states are stricter; the
table below is the maintained list (review it with counsel when a state changes its law).
A number's state comes from its area code (Florida presumes any Florida area code is a
Florida resident); its time zones from the lead, else from the number.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

import phonenumbers
from phonenumbers import geocoder
from phonenumbers import timezone as phone_timezone

from libs.schedule import CALLING_HOURS, ScheduleError, SendWindow, next_open, zone

ALL_WEEK = frozenset(range(7))
MON_SAT = frozenset(range(6))
SUNDAY = frozenset({6})


@dataclass(frozen=True, slots=True)
class StateRule:
    """A state's calling hours (local to the called party) and where the rule comes from."""

    state: str
    windows: tuple[SendWindow, ...]
    source: str


def _hours(weekdays: frozenset[int], start: str, end: str) -> SendWindow:
    return SendWindow.of(weekdays, start, end)


STATE_RULES: dict[str, StateRule] = {
    rule.state: rule
    for rule in (
        StateRule(
            "FL",
            (_hours(ALL_WEEK, "08:00", "20:00"),),
            "Fla. Stat. 501.059(8)(a) (Florida Telephone Solicitation Act, as amended 2021): 8 a.m. to 8 p.m.",
        ),
        StateRule(
            "OK",
            (_hours(ALL_WEEK, "08:00", "20:00"),),
            "Okla. Stat. tit. 15, 775C.5 (Telephone Solicitation Act of 2022): 8 a.m. to 8 p.m.",
        ),
        StateRule(
            "MD",
            (_hours(ALL_WEEK, "08:00", "20:00"),),
            "Md. Code, Com. Law 14-4501 et seq. (Stop the Spam Calls Act of 2023): 8 a.m. to 8 p.m.",
        ),
        StateRule(
            "WA",
            (_hours(ALL_WEEK, "08:00", "20:00"),),
            "RCW 80.36.390(2): no solicitation calls before 8 a.m. or after 8 p.m.",
        ),
        StateRule(
            "CT",
            (_hours(ALL_WEEK, "09:00", "20:00"),),
            "Conn. Gen. Stat. 42-288a (as amended by Public Act 23-98): 9 a.m. to 8 p.m.",
        ),
        StateRule(
            "TX",
            (_hours(MON_SAT, "09:00", "21:00"), _hours(SUNDAY, "12:00", "21:00")),
            "Tex. Bus. & Com. Code 301.051: 9 a.m. to 9 p.m. Monday-Saturday, noon to 9 p.m. Sunday.",
        ),
    )
}
FEDERAL = (_hours(ALL_WEEK, "08:00", "21:00"),)
"""47 CFR 64.1200(c)(1): 8 a.m. to 9 p.m. local time of the called party."""

_STATE_NAMES = {
    "Alabama": "AL", "Alaska": "AK", "Arizona": "AZ", "Arkansas": "AR", "California": "CA", "Colorado": "CO",
    "Connecticut": "CT", "Delaware": "DE", "Florida": "FL", "Georgia": "GA", "Hawaii": "HI", "Idaho": "ID",
    "Illinois": "IL", "Indiana": "IN", "Iowa": "IA", "Kansas": "KS", "Kentucky": "KY", "Louisiana": "LA",
    "Maine": "ME", "Maryland": "MD", "Massachusetts": "MA", "Michigan": "MI", "Minnesota": "MN",
    "Mississippi": "MS", "Missouri": "MO", "Montana": "MT", "Nebraska": "NE", "Nevada": "NV",
    "New Hampshire": "NH", "New Jersey": "NJ", "New Mexico": "NM", "New York": "NY", "North Carolina": "NC",
    "North Dakota": "ND", "Ohio": "OH", "Oklahoma": "OK", "Oregon": "OR", "Pennsylvania": "PA",
    "Rhode Island": "RI", "South Carolina": "SC", "South Dakota": "SD", "Tennessee": "TN", "Texas": "TX",
    "Utah": "UT", "Vermont": "VT", "Virginia": "VA", "Washington": "WA", "Washington State": "WA",
    "Washington D.C.": "DC", "West Virginia": "WV", "Wisconsin": "WI", "Wyoming": "WY",
}  # fmt: skip


def _parse(phone: str | None) -> phonenumbers.PhoneNumber | None:
    if not phone:
        return None
    try:
        number = phonenumbers.parse(phone, None)
    except phonenumbers.NumberParseException:
        return None
    return number if phonenumbers.is_possible_number(number) else None


def us_state(phone: str | None) -> str | None:
    """The US state a number's area code belongs to, as a two-letter code."""
    number = _parse(phone)
    if number is None or number.country_code != 1:
        return None
    if phonenumbers.region_code_for_number(number) not in ("US", None):
        return None
    place = geocoder.description_for_number(number, "en")
    if not place:
        return None
    _, comma, suffix = place.rpartition(", ")
    if comma and len(suffix) == 2 and suffix.isupper():
        return suffix
    return _STATE_NAMES.get(place)


def recipient_zones(lead_timezone: str | None, phone: str | None, fallback: str = "UTC") -> tuple[ZoneInfo, ...]:
    """Where the recipient may be: the lead's zone, else every zone of the number, else ``fallback``."""
    if lead_timezone:
        try:
            return (zone(lead_timezone),)
        except ScheduleError:
            pass
    number = _parse(phone)
    if number is not None:
        names = [z for z in phone_timezone.time_zones_for_number(number) if z != phone_timezone.UNKNOWN_TIMEZONE]
        zones = []
        for name in names:
            try:
                zones.append(zone(name))
            except ScheduleError:
                continue
        if zones:
            return tuple(zones)
    return (zone(fallback),)


def calling_windows(phone: str | None) -> tuple[tuple[SendWindow, ...], StateRule | None]:
    """The daily windows a call or text to ``phone`` may use, and the state rule that set them."""
    rule = STATE_RULES.get(us_state(phone) or "")
    return (rule.windows, rule) if rule else (FEDERAL, None)


def intersect(first: Sequence[SendWindow], second: Sequence[SendWindow]) -> tuple[SendWindow, ...]:
    """Windows open when one of ``first`` and one of ``second`` are both open."""
    out = []
    for a in first:
        for b in second:
            days = a.weekdays & b.weekdays
            lo, hi = max(a.start, b.start), min(a.end, b.end)
            if days and lo < hi:
                out.append(SendWindow(days, lo, hi))
    return tuple(out)


def is_allowed(instant: datetime, windows: Sequence[SendWindow], zones: Sequence[ZoneInfo]) -> bool:
    """Whether ``instant`` is inside one of ``windows`` in every zone the recipient may be in."""
    return earliest_allowed(instant, windows, zones) == instant


def earliest_allowed(instant: datetime, windows: Sequence[SendWindow], zones: Sequence[ZoneInfo]) -> datetime:
    """The first instant at or after ``instant`` open in every zone (raise if the zones never agree)."""
    if not windows:
        raise ScheduleError("no window is ever open")
    at = instant
    for _ in range(64):
        moved = False
        for tz in zones:
            candidate = min(next_open(at, window, tz) for window in windows)
            if candidate > at:
                at, moved = candidate, True
        if not moved:
            return at
    raise ScheduleError("the recipient's possible time zones share no open window")


__all__ = [
    "CALLING_HOURS",
    "FEDERAL",
    "STATE_RULES",
    "StateRule",
    "calling_windows",
    "earliest_allowed",
    "intersect",
    "is_allowed",
    "recipient_zones",
    "us_state",
]
