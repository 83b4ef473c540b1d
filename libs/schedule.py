"""When a step may go out: delays, send windows and local time, correct across DST changes.

Pure functions on timezone-aware datetimes; every result is in UTC. Local time exists only
here, through ``zoneinfo``. The campaign service previews schedules with them and the worker
computes real due times with them, so both always agree.

Rules:
- A delay in minutes or hours is elapsed time. A delay in days keeps the local wall-clock time
  (9:00 stays 9:00 across a DST change); in business days it also skips Saturdays and Sundays.
- A send window is a set of weekdays (0 = Monday) and a local start and end time, end
  exclusive; ``"24:00"`` ends at midnight. On a day a DST change removes the start time, the
  window opens at the first instant the local clock reads at least the start time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

MINUTES_PER_DAY = 1440
CALLING_HOURS = (8 * 60, 21 * 60)
"""SMS and voicemail may reach a person only between 08:00 and 21:00 in their local time."""


class ScheduleError(ValueError):
    """A window, delay or time zone that cannot be scheduled."""


def zone(name: str | None, default: str = "UTC") -> ZoneInfo:
    """Return the time zone ``name`` (else ``default``); raise :class:`ScheduleError` when unknown."""
    try:
        return ZoneInfo(name or default)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ScheduleError(f"unknown time zone: {name!r}") from exc


def is_valid_zone(name: str) -> bool:
    """Whether ``name`` is a time zone ``zoneinfo`` knows."""
    try:
        zone(name)
    except ScheduleError:
        return False
    return True


def parse_clock(value: str) -> int:
    """Parse ``HH:MM`` (``24:00`` allowed) into minutes after midnight."""
    try:
        hours, minutes = value.split(":")
        h, m = int(hours), int(minutes)
    except (AttributeError, ValueError) as exc:
        raise ScheduleError(f"not a time of day (HH:MM): {value!r}") from exc
    if len(hours) != 2 or len(minutes) != 2 or not (0 <= m < 60) or not (0 <= h < 24 or (h == 24 and m == 0)):
        raise ScheduleError(f"not a time of day (HH:MM): {value!r}")
    return h * 60 + m


def format_clock(minutes: int) -> str:
    """Format minutes after midnight as ``HH:MM``."""
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


@dataclass(frozen=True, slots=True)
class SendWindow:
    """Weekdays (0 = Monday) and local start/end minutes after midnight, end exclusive."""

    weekdays: frozenset[int]
    start: int
    end: int

    def __post_init__(self) -> None:
        if not self.weekdays or not self.weekdays <= set(range(7)):
            raise ScheduleError("weekdays must be a non-empty subset of 0 (Monday) .. 6 (Sunday)")
        if not (0 <= self.start < self.end <= MINUTES_PER_DAY):
            raise ScheduleError("the window must start before it ends, within one day")

    @classmethod
    def always(cls) -> SendWindow:
        """A window open all week, all day."""
        return cls(frozenset(range(7)), 0, MINUTES_PER_DAY)

    @classmethod
    def of(cls, weekdays: Iterable[int], start: str, end: str) -> SendWindow:
        """Build a window from weekdays and ``HH:MM`` strings."""
        return cls(frozenset(weekdays), parse_clock(start), parse_clock(end))

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> SendWindow:
        """Read the ``{"weekdays": [...], "start": "HH:MM", "end": "HH:MM"}`` stored on a campaign."""
        if not data:
            return cls.always()
        try:
            return cls.of((int(d) for d in data.get("weekdays", range(7))), data["start"], data["end"])
        except (KeyError, TypeError) as exc:
            raise ScheduleError("a send window needs weekdays, start and end") from exc

    def to_json(self) -> dict[str, Any]:
        """The JSON form stored on a campaign."""
        return {"weekdays": sorted(self.weekdays), "start": format_clock(self.start), "end": format_clock(self.end)}

    def narrowed(self, start: int, end: int) -> SendWindow:
        """Return this window intersected with the daily hours ``[start, end)``."""
        lo, hi = max(self.start, start), min(self.end, end)
        if lo >= hi:
            raise ScheduleError("the window and the allowed hours do not overlap")
        return SendWindow(self.weekdays, lo, hi)


@dataclass(frozen=True, slots=True)
class Delay:
    """How long after the previous step a step waits: ``minutes`` in ``unit``, maybe in business days."""

    minutes: int
    unit: str = "minutes"
    business_days: bool = False

    def __post_init__(self) -> None:
        if self.minutes < 0:
            raise ScheduleError("a delay cannot be negative")
        if self.unit not in ("minutes", "hours", "days"):
            raise ScheduleError(f"unknown delay unit: {self.unit!r}")

    @property
    def in_days(self) -> bool:
        """Whether the delay counts local calendar (or business) days."""
        return self.unit == "days" or self.business_days


def _naive(d: date, minutes: int) -> datetime:
    return datetime.combine(d, time()) + timedelta(minutes=minutes)


def _to_utc(local_naive: datetime, tz: ZoneInfo) -> datetime:
    """First instant at which the clock in ``tz`` reads at least ``local_naive``."""
    first = local_naive.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if first.astimezone(tz).replace(tzinfo=None) == local_naive:
        return first  # exists (and for a repeated time, fold=0 is its first occurrence)
    # The wall time falls in a gap (clocks jumped forward): the answer is the jump itself,
    # the first instant whose local reading reaches local_naive. Bisect to the second.
    lo = local_naive.replace(tzinfo=tz, fold=1).astimezone(UTC)
    hi = first
    if lo > hi:
        lo, hi = hi, lo
    while hi - lo > timedelta(seconds=1):
        mid = lo + (hi - lo) / 2
        if mid.astimezone(tz).replace(tzinfo=None) >= local_naive:
            hi = mid
        else:
            lo = mid
    return hi.replace(microsecond=0)


def _require_aware(instant: datetime) -> datetime:
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ScheduleError("instants must be timezone-aware")
    return instant.astimezone(UTC)


def add_business_days(d: date, days: int) -> date:
    """Return the date ``days`` business days (Monday to Friday) after ``d``."""
    remaining = days
    while remaining > 0:
        d += timedelta(days=1)
        if d.weekday() < 5:
            remaining -= 1
    return d


def after_delay(instant: datetime, delay: Delay, tz: ZoneInfo) -> datetime:
    """Return the instant ``delay`` after ``instant`` (days keep the local wall-clock time)."""
    instant = _require_aware(instant)
    if not delay.in_days:
        return instant + timedelta(minutes=delay.minutes)
    days, rest = divmod(delay.minutes, MINUTES_PER_DAY)
    local = instant.astimezone(tz).replace(tzinfo=None)
    target = add_business_days(local.date(), days) if delay.business_days else local.date() + timedelta(days=days)
    wall = datetime.combine(target, local.time())
    return _to_utc(wall, tz) + timedelta(minutes=rest)


def window_bounds(d: date, window: SendWindow, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """Return the UTC instants the window opens and closes on local date ``d``."""
    return _to_utc(_naive(d, window.start), tz), _to_utc(_naive(d, window.end), tz)


def next_open(instant: datetime, window: SendWindow, tz: ZoneInfo) -> datetime:
    """Return the earliest instant at or after ``instant`` inside ``window`` in ``tz``."""
    instant = _require_aware(instant)
    today = instant.astimezone(tz).date()
    for offset in range(-1, 9):  # -1: a window of yesterday's date may still be open after a DST shift
        d = today + timedelta(days=offset)
        if d.weekday() not in window.weekdays:
            continue
        opens, closes = window_bounds(d, window, tz)
        if instant < closes and opens < closes:
            return max(instant, opens)
    raise ScheduleError("the window never opens")  # unreachable for a valid window


def is_open(instant: datetime, window: SendWindow, tz: ZoneInfo) -> bool:
    """Whether ``instant`` is inside ``window`` in ``tz``."""
    instant = _require_aware(instant)
    return next_open(instant, window, tz) == instant


def next_send_time(previous: datetime, delay: Delay, window: SendWindow, tz: ZoneInfo) -> datetime:
    """Return when a step may go out: ``delay`` after ``previous``, then the next open window."""
    return next_open(after_delay(previous, delay, tz), window, tz)


def channel_window(window: SendWindow, channel: str) -> SendWindow:
    """Return the window a channel may use: SMS and voicemail also keep to calling hours."""
    if channel in ("sms", "voicemail"):
        return window.narrowed(*CALLING_HOURS)
    return window


def preview(
    start: datetime,
    steps: Iterable[tuple[str, Delay]],
    window: SendWindow,
    tz: ZoneInfo,
) -> list[datetime]:
    """Return when each ``(channel, delay)`` step would go out if each were sent the moment it was due."""
    out: list[datetime] = []
    at = _require_aware(start)
    for channel, delay in steps:
        at = next_send_time(at, delay, channel_window(window, channel), tz)
        out.append(at)
    return out


__all__ = [
    "CALLING_HOURS",
    "Delay",
    "ScheduleError",
    "SendWindow",
    "add_business_days",
    "after_delay",
    "channel_window",
    "format_clock",
    "is_open",
    "is_valid_zone",
    "next_open",
    "next_send_time",
    "parse_clock",
    "preview",
    "window_bounds",
    "zone",
]
