"""Compliance hours: may a message on a channel reach a lead at an instant, and if not, from when?

The one owner of that decision. The worker's gate holds messages with it, the campaign
service's schedule preview and a lead's timeline explain and predict with it, so the three
always agree. A message may go when it is inside the send window (the step's own, else the
campaign's) in the lead's time zone (else the campaign's); a call or text must also be inside
calling hours in every zone the recipient may be in.

Calling hours for SMS and voicemail: 08:00-21:00 recipient-local, stricter where a US state says so.
47 CFR 64.1200(c)(1) forbids telephone solicitations before 8 a.m. or after 9 p.m. at the
called party's location, and the FCC treats texts as calls. Several states are stricter; the
table below is the maintained list (review it with counsel when a state changes its law).
A number's state comes from its area code (Florida presumes any Florida area code is a
Florida resident); its time zones from the lead, else from the number.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

import phonenumbers

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

# US area codes by state, taken from libphonenumber's geocoding data (phonenumbers 9.0.43).
# Kept here because importing phonenumbers' geocoder costs about 170 MB per worker process.
AREA_CODES_BY_STATE = {
    "AK": "907",
    "AL": "205 251 256 334 659 938",
    "AR": "327 479 501 870",
    "AZ": "480 520 602 623 928",
    "CA": "209 213 279 310 323 341 350 369 408 415 424 442 510 530 559 562 619 626 628 "
    "650 657 661 669 707 714 738 747 760 805 818 820 831 840 858 909 916 925 949 951",
    "CO": "303 719 720 748 970 983",
    "CT": "203 475 860 959",
    "DC": "202 771",
    "DE": "302",
    "FL": "239 305 321 324 352 386 407 448 561 645 656 689 727 728 754 772 786 813 850 863 904 941 954",
    "GA": "229 404 470 478 678 706 762 770 912 943",
    "HI": "808",
    "IA": "319 515 563 641 712",
    "ID": "208 986",
    "IL": "217 224 309 312 331 447 464 618 630 708 730 773 779 815 847 872",
    "IN": "219 260 317 463 574 765 812 930",
    "KS": "316 620 785 913",
    "KY": "270 364 502 606 859",
    "LA": "225 318 337 504 985",
    "MA": "339 351 413 508 617 774 781 857 978",
    "MD": "227 240 301 410 443 667",
    "ME": "207",
    "MI": "231 248 269 313 517 586 616 734 810 906 947 989",
    "MN": "218 320 507 612 651 763 952",
    "MO": "235 314 417 557 573 636 660 816 975",
    "MS": "228 601 662 769",
    "MT": "406",
    "NC": "252 336 472 704 743 828 910 919 980 984",
    "ND": "701",
    "NE": "308 402 531",
    "NH": "603",
    "NJ": "201 551 609 640 732 848 856 862 908 973",
    "NM": "505 575",
    "NV": "702 725 775",
    "NY": "212 315 329 332 347 363 516 518 585 607 631 646 680 716 718 838 845 914 917 929 934",
    "OH": "216 220 234 283 326 330 380 419 440 513 567 614 740 937",
    "OK": "405 539 572 580 918",
    "OR": "458 503 541 971",
    "PA": "215 223 267 272 412 445 484 570 582 610 717 724 814 835 878",
    "RI": "401",
    "SC": "803 821 839 843 854 864",
    "SD": "605",
    "TN": "423 615 629 731 865 901 931",
    "TX": "210 214 254 281 325 346 361 409 430 432 469 512 682 713 "
    "726 737 806 817 830 832 903 915 936 940 945 956 972 979",
    "UT": "385 435 801",
    "VA": "276 434 540 571 686 703 757 804 826 948",
    "VT": "802",
    "WA": "206 253 360 425 509 564",
    "WI": "262 274 353 414 534 608 715 920",
    "WV": "304 681",
    "WY": "307",
}  # fmt: skip
STATE_OF_AREA_CODE = {int(npa): state for state, codes in AREA_CODES_BY_STATE.items() for npa in codes.split()}


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
    digits = str(number.national_number)
    return STATE_OF_AREA_CODE.get(int(digits[:3])) if len(digits) == 10 else None


def recipient_zones(lead_timezone: str | None, phone: str | None, fallback: str = "UTC") -> tuple[ZoneInfo, ...]:
    """Where the recipient may be: the lead's zone, else every zone of the number, else ``fallback``."""
    if lead_timezone:
        try:
            return (zone(lead_timezone),)
        except ScheduleError:
            pass
    number = _parse(phone)
    if number is not None:
        # Imported here: its prefix tables cost every email-only worker memory for nothing.
        from phonenumbers import timezone as phone_timezone

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


class Verdict(StrEnum):
    """What the compliance hours say about an instant."""

    OPEN = "open"
    LATER = "later"
    NO_OVERLAP = "no_overlap"
    NEVER = "never"


@dataclass(frozen=True, slots=True)
class Recipient:
    """Where a lead may be: its own zone and phone number, and the campaign's zone as the fallback."""

    lead_timezone: str | None = None
    phone: str | None = None
    campaign_timezone: str = "UTC"


@dataclass(frozen=True, slots=True)
class Allowance:
    """The answer for one channel, lead and instant.

    ``verdict`` is ``open`` (``at`` is the instant asked about), ``later`` (``at`` is the first
    allowed instant, ``reason`` says what holds it: ``send_window``, ``quiet_hours`` or
    ``quiet_hours_<state>``), ``no_overlap`` (the send window never meets calling hours) or
    ``never`` (the recipient's possible zones share no open window).
    """

    verdict: Verdict
    at: datetime | None
    reason: str | None
    zones: tuple[ZoneInfo, ...]
    rule: StateRule | None = None


def lead_zone(recipient: Recipient) -> ZoneInfo:
    """The zone an email to the lead is timed in: the lead's, else the campaign's, else UTC."""
    try:
        return zone(recipient.lead_timezone, default=recipient.campaign_timezone)
    except ScheduleError:
        try:
            return zone(recipient.campaign_timezone)
        except ScheduleError:
            return zone("UTC")


def window_of(send_window: Mapping[str, Any] | None) -> SendWindow:
    """The send window stored on a step or campaign; one that cannot be read never holds a message."""
    try:
        return SendWindow.from_json(send_window)
    except ScheduleError:
        return SendWindow.always()


def allowance(
    instant: datetime, channel: str, send_window: Mapping[str, Any] | None, recipient: Recipient
) -> Allowance:
    """Whether ``channel`` may reach ``recipient`` at ``instant`` under ``send_window``, else from when."""
    window = window_of(send_window)
    rule: StateRule | None = None
    if channel in ("sms", "voicemail"):
        try:
            fallback = zone(recipient.campaign_timezone).key
        except ScheduleError:
            fallback = "UTC"
        zones = recipient_zones(recipient.lead_timezone, recipient.phone, fallback=fallback)
        legal, rule = calling_windows(recipient.phone)
        windows = intersect((window,), legal)
        reason = f"quiet_hours_{rule.state.lower()}" if rule else "quiet_hours"
        if not windows:
            return Allowance(Verdict.NO_OVERLAP, None, "send_window_outside_calling_hours", zones, rule)
    else:
        zones = (lead_zone(recipient),)
        windows = (window,)
        reason = "send_window"
    try:
        allowed = earliest_allowed(instant, windows, zones)
    except ScheduleError:
        return Allowance(Verdict.NEVER, None, "no_common_calling_window", zones, rule)
    if allowed == instant:
        return Allowance(Verdict.OPEN, instant, None, zones, rule)
    if channel in ("sms", "voicemail") and earliest_allowed(instant, (window,), zones) > instant:
        reason = "send_window"
    return Allowance(Verdict.LATER, allowed, reason, zones, rule)


__all__ = [
    "CALLING_HOURS",
    "FEDERAL",
    "STATE_RULES",
    "Allowance",
    "Recipient",
    "StateRule",
    "Verdict",
    "allowance",
    "calling_windows",
    "earliest_allowed",
    "intersect",
    "is_allowed",
    "lead_zone",
    "recipient_zones",
    "us_state",
    "window_of",
]
