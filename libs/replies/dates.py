"""Dates in replies, English and Spanish, resolved against the time the reply was received.

Every phrase resolves to the first day it can mean that is not before the reply:
"12/15", "el 3 de marzo" and "the 15th" to that day (next year once passed), "next Monday" / "el lunes" to
the next such weekday, "next week" to its Monday, "in March" / "next month" to the 1st, "Q3" /
"el tercer trimestre" to the quarter's first day ("after Q1" to the next one's), "in two weeks" /
"en dos semanas" by adding, "after the holidays" to early January when said in the last quarter. Numeric dates are
month-first in English and day-first in Spanish (and whenever the first number exceeds 12).
The text is expected folded (:func:`libs.replies.text.fold`: lower case, no accents).
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, timedelta

MONTHS = {
    "january": 1, "jan": 1, "february": 2, "feb": 2, "march": 3, "mar": 3, "april": 4, "apr": 4,
    "may": 5, "june": 6, "jun": 6, "july": 7, "jul": 7, "august": 8, "aug": 8,
    "september": 9, "sept": 9, "sep": 9, "october": 10, "oct": 10, "november": 11, "nov": 11,
    "december": 12, "dec": 12,
    "enero": 1, "ene": 1, "febrero": 2, "marzo": 3, "abril": 4, "abr": 4, "mayo": 5, "junio": 6,
    "julio": 7, "agosto": 8, "ago": 8, "septiembre": 9, "setiembre": 9, "octubre": 10,
    "noviembre": 11, "diciembre": 12, "dic": 12,
}  # fmt: skip
WEEKDAYS = {
    "monday": 0, "mon": 0, "tuesday": 1, "tue": 1, "tues": 1, "wednesday": 2, "wed": 2,
    "thursday": 3, "thu": 3, "thurs": 3, "friday": 4, "fri": 4, "saturday": 5, "sat": 5, "sunday": 6, "sun": 6,
    "lunes": 0, "martes": 1, "miercoles": 2, "jueves": 3, "viernes": 4, "sabado": 5, "domingo": 6,
}  # fmt: skip
NUMBERS = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "couple of": 2, "a couple of": 2, "few": 3, "a few": 3,
    "un": 1, "una": 1, "uno": 1, "dos": 2, "tres": 3, "cuatro": 4, "cinco": 5, "seis": 6, "siete": 7,
    "ocho": 8, "nueve": 9, "diez": 10, "once": 11, "doce": 12, "un par de": 2, "unas": 3, "unos": 3,
}  # fmt: skip
ORDINAL_QUARTERS = {
    "first": 1, "1st": 1, "second": 2, "2nd": 2, "third": 3, "3rd": 3, "fourth": 4, "4th": 4,
    "primer": 1, "primero": 1, "segundo": 2, "tercer": 3, "tercero": 3, "cuarto": 4, "ultimo": 4,
}  # fmt: skip

_MONTH = "|".join(sorted(MONTHS, key=len, reverse=True))
_WEEKDAY = "|".join(sorted(WEEKDAYS, key=len, reverse=True))
_NUMBER = r"\d{1,2}|" + "|".join(re.escape(n) for n in sorted(NUMBERS, key=len, reverse=True))
_YEAR = r"(?:,?\s*(?:de(?:l)?\s+)?(?P<year>\d{4}))?"
_AFTER = r"(?P<after>\b(?:after|past|post|following|despues\s+del?|tras(?:\s+el)?)\s+(?:the\s+)?)?"
_DAY = r"(?P<day>\d{1,2})(?:st|nd|rd|th|º|o)?"


@dataclass(frozen=True, slots=True)
class Found:
    """A date phrase, where it starts in the text, and the day it means."""

    start: int
    text: str
    day: date


def _on_or_after(today: date, month: int, day: int, year: int | None) -> date | None:
    if year is not None:
        return _safe(year, month, day)
    candidate = _safe(today.year, month, day)
    if candidate is not None and candidate < today:
        candidate = _safe(today.year + 1, month, day)
    return candidate


def _safe(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _add_months(start: date, months: int) -> date:
    index = start.month - 1 + months
    year, month = start.year + index // 12, index % 12 + 1
    return date(year, month, min(start.day, calendar.monthrange(year, month)[1]))


def _quarter_start(today: date, quarter: int, year: int | None) -> date:
    if year is not None:
        return date(year, 3 * quarter - 2, 1)
    start = date(today.year, 3 * quarter - 2, 1)
    current = (today.month - 1) // 3 + 1
    return start if quarter > current else date(today.year + 1, 3 * quarter - 2, 1)


def _month_start(today: date, month: int, year: int | None, part: str | None) -> date:
    day = {"mid": 15, "mediados": 15, "late": 20, "end": 0, "finales": 0, "fines": 0}.get(part or "", 1)
    year = year if year is not None else (today.year if month > today.month else today.year + 1)
    return date(year, month, day or calendar.monthrange(year, month)[1])


def _after(start: date, after: str | None) -> date:
    """ "after Q1" is the day Q1 ends: the next quarter's first day."""
    return _add_months(start, 3) if after else start


def _number(word: str) -> int:
    return int(word) if word.isdigit() else NUMBERS[word]


def _year(value: str | None) -> int | None:
    return int(value) if value else None


Rule = tuple[re.Pattern[str], str]
_RULES: list[Rule] = [
    (re.compile(r"\b(?P<year>\d{4})-(?P<month>\d{1,2})-(?P<day>\d{1,2})\b"), "iso"),
    (re.compile(r"(?<![\d/])(?P<a>\d{1,2})[/.](?P<b>\d{1,2})(?:[/.](?P<year>\d{2,4}))?(?![\d/])"), "numeric"),
    (re.compile(rf"\b{_DAY}\s+(?:de\s+|of\s+)?(?P<month>{_MONTH})\.?\b{_YEAR}"), "day_month"),
    (re.compile(rf"\b(?P<month>{_MONTH})\.?\s+{_DAY}\b{_YEAR}"), "month_day"),
    (
        re.compile(
            rf"\b(?:(?P<part>early|mid|late|end(?:\s+of)?|beginning\s+of|start\s+of|principios|comienzos|inicios|"
            rf"mediados|finales|fines)\s*(?:de\s+|-\s*)?)?(?:in\s+|en\s+|until\s+|hasta\s+|for\s+)?"
            rf"(?P<month>{_MONTH})\b(?:\s+(?:de\s+)?(?P<year>\d{{4}}))?"
        ),
        "month",
    ),
    (
        re.compile(r"\b(?:on|until|till|by|from|after|before|back)\s+the\s+(?P<day>\d{1,2})(?:st|nd|rd|th)\b"),
        "day_only",
    ),
    (
        re.compile(
            r"\b(?:el|hasta\s+el|desde\s+el|a\s+partir\s+del)\s+(?:dia\s+)?(?P<day>\d{1,2})\b"
            r"(?!\s*(?:de\b|/|\.\d|:|h\b|%))"
        ),
        "day_only",
    ),
    (
        re.compile(rf"{_AFTER}\b(?:q(?P<q>[1-4])|(?P<q2>[1-4])q)\b(?:\s*(?:of\s+|de\s+|')?(?P<year>\d{{4}}|\d{{2}}))?"),
        "quarter",
    ),
    (
        re.compile(
            rf"{_AFTER}(?:\b(?P<ord>first|1st|second|2nd|third|3rd|fourth|4th)\s+quarter\b(?:\s+of\s+(?P<year>\d{{4}}))?"
            r"|\b(?P<ord_es>primer|primero|segundo|tercer|tercero|cuarto|ultimo)\s+trimestre\b(?:\s+de(?:l)?\s+(?P<year_es>\d{4}))?)"
        ),
        "quarter_words",
    ),
    (re.compile(r"\bnext\s+quarter\b|\b(?:el\s+)?(?:proximo\s+trimestre|trimestre\s+que\s+viene)\b"), "next_quarter"),
    (
        re.compile(
            rf"\b(?:(?P<next>next|this|coming|el\s+proximo|el\s+que\s+viene|proximo|el|on|este|the\s+following)\s+)?"
            rf"(?P<weekday>{_WEEKDAY})\b(?:\s+que\s+viene)?"
        ),
        "weekday",
    ),
    (re.compile(r"\btomorrow\b|\bpasado\s+manana\b|(?<!la\s)(?<!por\s)\bmanana\b(?!\s+por\b)"), "tomorrow"),
    (
        re.compile(
            rf"\b(?:in|after|en|dentro\s+de|despues\s+de)\s+(?P<n>{_NUMBER})\s+"
            r"(?P<unit>days?|weeks?|months?|years?|dias?|semanas?|meses|mes|anos?)\b"
        ),
        "in_n",
    ),
    (
        re.compile(
            r"\bnext\s+(?P<unit>week|month|year|yr|wk|mo)\b|\b(?:la\s+)?(?:proxima|siguiente)\s+(?P<unit_f>semana)\b"
            r"|\b(?:el\s+)?(?:proximo|siguiente)\s+(?P<unit_m>mes|ano)\b"
            r"|\b(?:la|el)\s+(?P<unit_v>semana|mes|ano)\s+que\s+viene\b"
        ),
        "next_unit",
    ),
    (re.compile(r"\b(?:end\s+of\s+(?:the\s+)?month|finales?\s+de(?:l)?\s+mes|fin\s+de\s+mes)\b"), "end_of_month"),
    (
        re.compile(
            r"\bafter\s+(?:the\s+)?(?:holidays|christmas|new\s+year'?s?|xmas)\b|\bin\s+the\s+new\s+year\b"
            r"|\bdespues\s+de\s+(?:las\s+)?(?:fiestas|navidad(?:es)?|reyes|ano\s+nuevo)\b"
            r"|\b(?:a\s+la\s+)?vuelta\s+de\s+(?:las\s+)?(?:fiestas|navidad(?:es)?)\b|\bel\s+ano\s+nuevo\b"
        ),
        "holidays",
    ),
    (re.compile(r"\b(?:after|past|post)[\s-]+thanksgiving\b"), "thanksgiving"),
    (re.compile(r"\b(?:after|past|post)[\s-]+labou?r\s+day\b"), "labor_day"),
    (
        re.compile(r"\bafter\s+(?:the\s+)?summer\b|\bdespues\s+del\s+verano\b|\ba\s+la\s+vuelta\s+del\s+verano\b"),
        "summer",
    ),
]


def _resolve(kind: str, m: re.Match[str], today: date, day_first: bool) -> date | None:
    g = m.groupdict()
    if kind == "iso":
        return _safe(int(g["year"]), int(g["month"]), int(g["day"]))
    if kind == "numeric":
        a, b = int(g["a"]), int(g["b"])
        if m.group(0).count(".") and g["year"] is None and not day_first:
            return None  # "2.5" is a number, not a date
        month, day = (b, a) if day_first or a > 12 else (a, b)
        if month > 12:
            return None
        year = g["year"]
        return _on_or_after(today, month, day, None if year is None else int(year) + (2000 if len(year) == 2 else 0))
    if kind in ("day_month", "month_day"):
        return _on_or_after(today, MONTHS[g["month"]], int(g["day"]), _year(g.get("year")))
    if kind == "month":
        if g["month"] in ("may", "mar", "sat", "sun", "jun") and not (
            g["part"] or re.match(r"(in|en|until|hasta)\s", m.group(0))
        ):
            return None  # "may" the verb, "mar" the sea
        part = (g["part"] or "").split()[0] if g["part"] else None
        return _month_start(today, MONTHS[g["month"]], _year(g["year"]), part)
    if kind == "day_only":
        day = int(g["day"])
        this_month = _safe(today.year, today.month, day)
        if this_month is not None and this_month >= today:
            return this_month
        following = _add_months(today.replace(day=1), 1)
        return _safe(following.year, following.month, day)
    if kind == "quarter":
        year = g["year"]
        full = None if year is None else int(year) + (2000 if len(year) == 2 else 0)
        return _after(_quarter_start(today, int(g["q"] or g["q2"]), full), g["after"])
    if kind == "quarter_words":
        ordinal = g["ord"] or g["ord_es"]
        return _after(_quarter_start(today, ORDINAL_QUARTERS[ordinal], _year(g["year"] or g["year_es"])), g["after"])
    if kind == "next_quarter":
        current = (today.month - 1) // 3 + 1
        return date(today.year, 3 * current + 1, 1) if current < 4 else date(today.year + 1, 1, 1)
    if kind == "weekday":
        if g["next"] is None and g["weekday"] in ("mon", "sat", "sun", "wed", "fri", "thu", "tue"):
            return None
        ahead = (WEEKDAYS[g["weekday"]] - today.weekday()) % 7 or 7
        return today + timedelta(days=ahead)
    if kind == "tomorrow":
        return today + timedelta(days=2 if m.group(0).startswith("pasado") else 1)
    if kind == "in_n":
        n, unit = _number(g["n"]), g["unit"]
        if unit.startswith(("day", "dia")):
            return today + timedelta(days=n)
        if unit.startswith(("week", "semana")):
            return today + timedelta(weeks=n)
        if unit.startswith(("month", "mes")):
            return _add_months(today, n)
        return _add_months(today, 12 * n)
    if kind == "next_unit":
        unit = g["unit"] or g["unit_f"] or g["unit_m"] or g["unit_v"]
        if unit in ("week", "wk", "semana"):
            return today + timedelta(days=7 - today.weekday())
        if unit in ("month", "mo", "mes"):
            return _add_months(today.replace(day=1), 1)
        return date(today.year + 1, 1, 1)
    if kind == "end_of_month":
        return today.replace(day=calendar.monthrange(today.year, today.month)[1])
    if kind == "holidays":
        if today.month >= 10:
            return date(today.year + 1, 1, 5)
        return date(today.year, 1, 5) if (today.month, today.day) < (1, 5) else None
    if kind == "thanksgiving":  # the day after the fourth Thursday of November
        year = today.year if (today.month, today.day) < (11, 22) else today.year + 1
        first = date(year, 11, 1)
        return first + timedelta(days=(3 - first.weekday()) % 7 + 21 + 1)
    if kind == "labor_day":  # the day after the first Monday of September
        year = today.year if (today.month, today.day) < (9, 1) else today.year + 1
        first = date(year, 9, 1)
        return first + timedelta(days=(0 - first.weekday()) % 7 + 1)
    if kind == "summer":
        return date(today.year, 9, 1) if today.month < 9 else date(today.year + 1, 9, 1)
    return None


def find_dates(folded: str, today: date, *, day_first: bool = False) -> list[Found]:
    """Every date phrase in ``folded`` with the day it means, in the order they appear (overlaps dropped)."""
    taken: list[tuple[int, int]] = []
    found: list[Found] = []
    for pattern, kind in _RULES:
        for m in pattern.finditer(folded):
            if any(m.start() < end and start < m.end() for start, end in taken):
                continue
            day = _resolve(kind, m, today, day_first)
            if day is None:
                continue
            taken.append((m.start(), m.end()))
            found.append(Found(m.start(), m.group(0), day))
    return sorted(found, key=lambda f: f.start)


__all__ = ["Found", "find_dates"]
