"""Delays, send windows and local time: window edges, weekends, business days and DST days."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from libs.schedule import (
    Delay,
    ScheduleError,
    SendWindow,
    add_business_days,
    after_delay,
    channel_window,
    is_open,
    next_open,
    next_send_time,
    parse_clock,
    preview,
    window_bounds,
    zone,
)

NY = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")
PHOENIX = ZoneInfo("America/Phoenix")
WEEKDAYS_9_TO_5 = SendWindow.of(range(5), "09:00", "17:00")
EVERY_DAY_9_TO_5 = SendWindow.of(range(7), "09:00", "17:00")


def local(tz: ZoneInfo, *args: int, fold: int = 0) -> datetime:
    return datetime(*args, tzinfo=tz, fold=fold)  # type: ignore[misc]


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


# --- windows -------------------------------------------------------------------------------


def test_inside_the_window_sends_now() -> None:
    at = local(NY, 2026, 3, 4, 10, 30)  # Wednesday
    assert next_open(at, WEEKDAYS_9_TO_5, NY) == at
    assert is_open(at, WEEKDAYS_9_TO_5, NY)


def test_start_edge_is_inside_and_end_edge_is_outside() -> None:
    opens = local(NY, 2026, 3, 4, 9, 0)
    assert is_open(opens, WEEKDAYS_9_TO_5, NY)
    assert not is_open(opens - timedelta(seconds=1), WEEKDAYS_9_TO_5, NY)
    assert next_open(opens - timedelta(seconds=1), WEEKDAYS_9_TO_5, NY) == opens
    last = local(NY, 2026, 3, 4, 16, 59, 59)
    assert is_open(last, WEEKDAYS_9_TO_5, NY)
    closes = local(NY, 2026, 3, 4, 17, 0)
    assert not is_open(closes, WEEKDAYS_9_TO_5, NY)
    assert next_open(closes, WEEKDAYS_9_TO_5, NY) == local(NY, 2026, 3, 5, 9, 0)


def test_friday_evening_waits_for_monday_morning() -> None:
    friday_evening = local(NY, 2026, 3, 6, 18, 0)
    assert next_open(friday_evening, WEEKDAYS_9_TO_5, NY) == local(NY, 2026, 3, 9, 9, 0)
    saturday_noon = local(NY, 2026, 3, 7, 12, 0)
    assert next_open(saturday_noon, WEEKDAYS_9_TO_5, NY) == local(NY, 2026, 3, 9, 9, 0)


def test_window_is_read_in_the_leads_time_zone() -> None:
    # 14:00 UTC on a Wednesday is 09:00 in New York (EST) but 15:00 in Berlin (CET).
    at = utc(2026, 2, 4, 14, 0)
    assert is_open(at, WEEKDAYS_9_TO_5, NY)
    assert is_open(at, WEEKDAYS_9_TO_5, BERLIN)
    early = utc(2026, 2, 4, 13, 59)
    assert next_open(early, WEEKDAYS_9_TO_5, NY) == utc(2026, 2, 4, 14, 0)
    late = utc(2026, 2, 4, 16, 0)  # 17:00 in Berlin: closed until Thursday 09:00 CET
    assert next_open(late, WEEKDAYS_9_TO_5, BERLIN) == utc(2026, 2, 5, 8, 0)


def test_window_until_midnight() -> None:
    window = SendWindow.of(range(7), "20:00", "24:00")
    assert is_open(local(BERLIN, 2026, 5, 1, 23, 59, 59), window, BERLIN)
    assert next_open(local(BERLIN, 2026, 5, 2, 0, 0), window, BERLIN) == local(BERLIN, 2026, 5, 2, 20, 0)


def test_results_are_utc() -> None:
    result = next_open(local(NY, 2026, 3, 7, 12, 0), WEEKDAYS_9_TO_5, NY)
    assert result.tzinfo is UTC


# --- DST -----------------------------------------------------------------------------------


def test_new_york_spring_forward_keeps_nine_local() -> None:
    # 2026-03-08 is the US spring-forward Sunday: 09:00 EST on Friday is 14:00 UTC, Monday 09:00 is EDT.
    window = WEEKDAYS_9_TO_5
    assert next_open(local(NY, 2026, 3, 6, 18, 0), window, NY) == utc(2026, 3, 9, 13, 0)
    assert window_bounds(datetime(2026, 3, 6).date(), window, NY) == (utc(2026, 3, 6, 14), utc(2026, 3, 6, 22))


def test_new_york_window_starting_in_the_skipped_hour_opens_at_the_jump() -> None:
    # On 2026-03-08 clocks go 01:59:59 EST -> 03:00:00 EDT (07:00 UTC); 02:30 never happens.
    window = SendWindow.of(range(7), "02:30", "05:00")
    opens, closes = window_bounds(datetime(2026, 3, 8).date(), window, NY)
    assert opens == utc(2026, 3, 8, 7, 0)
    assert opens.astimezone(NY).hour == 3
    assert closes == utc(2026, 3, 8, 9, 0)
    assert next_open(utc(2026, 3, 8, 6, 0), window, NY) == utc(2026, 3, 8, 7, 0)


def test_new_york_fall_back_repeated_hour_window_covers_both_passes() -> None:
    # 2026-11-01: 01:00-02:00 happens twice (EDT then EST); a 01:00-02:00 window lasts two hours.
    window = SendWindow.of(range(7), "01:00", "02:00")
    opens, closes = window_bounds(datetime(2026, 11, 1).date(), window, NY)
    assert (opens, closes) == (utc(2026, 11, 1, 5, 0), utc(2026, 11, 1, 7, 0))
    assert is_open(local(NY, 2026, 11, 1, 1, 30, fold=1), window, NY)


def test_berlin_spring_forward_and_fall_back() -> None:
    # Europe switches on the last Sunday of March (2026-03-29) and October (2026-10-25).
    window = EVERY_DAY_9_TO_5
    assert window_bounds(datetime(2026, 3, 28).date(), window, BERLIN)[0] == utc(2026, 3, 28, 8, 0)
    assert window_bounds(datetime(2026, 3, 29).date(), window, BERLIN)[0] == utc(2026, 3, 29, 7, 0)
    assert window_bounds(datetime(2026, 10, 24).date(), window, BERLIN)[0] == utc(2026, 10, 24, 7, 0)
    assert window_bounds(datetime(2026, 10, 25).date(), window, BERLIN)[0] == utc(2026, 10, 25, 8, 0)
    gap = SendWindow.of(range(7), "02:15", "04:00")
    assert window_bounds(datetime(2026, 3, 29).date(), gap, BERLIN)[0] == utc(2026, 3, 29, 1, 0)


def test_phoenix_has_no_dst() -> None:
    for day in (datetime(2026, 1, 14).date(), datetime(2026, 3, 9).date(), datetime(2026, 7, 15).date()):
        opens, closes = window_bounds(day, WEEKDAYS_9_TO_5, PHOENIX)
        assert (opens.hour, closes.hour) == (16, 0)
    # The day New York springs forward, Phoenix moves from 2 to 3 hours behind it.
    assert next_open(utc(2026, 3, 9, 13, 0), WEEKDAYS_9_TO_5, PHOENIX) == utc(2026, 3, 9, 16, 0)


def test_day_delay_keeps_wall_clock_across_dst() -> None:
    friday_10 = local(NY, 2026, 3, 6, 10, 0)  # EST
    monday_10 = after_delay(friday_10, Delay(3 * 1440, "days"), NY)
    assert monday_10 == local(NY, 2026, 3, 9, 10, 0)  # EDT
    assert monday_10 - friday_10 == timedelta(days=3) - timedelta(hours=1)
    # Hours are elapsed time: 72 hours later the clock reads 11:00.
    assert after_delay(friday_10, Delay(72 * 60, "hours"), NY).astimezone(NY).hour == 11
    berlin = after_delay(local(BERLIN, 2026, 10, 24, 9, 0), Delay(1440, "days"), BERLIN)
    assert berlin == local(BERLIN, 2026, 10, 25, 9, 0)
    assert berlin - local(BERLIN, 2026, 10, 24, 9, 0) == timedelta(hours=25)


def test_day_delay_landing_in_the_skipped_hour_moves_to_the_jump() -> None:
    sat = local(NY, 2026, 3, 7, 2, 30)
    assert after_delay(sat, Delay(1440, "days"), NY) == utc(2026, 3, 8, 7, 0)


# --- delays and business days ------------------------------------------------------------------


def test_minute_and_hour_delays_are_elapsed_time() -> None:
    at = utc(2026, 3, 4, 12, 0)
    assert after_delay(at, Delay(90), NY) == utc(2026, 3, 4, 13, 30)
    assert after_delay(at, Delay(0), NY) == at
    assert after_delay(at, Delay(120, "hours"), NY) == utc(2026, 3, 4, 14, 0)


def test_business_days_skip_weekends() -> None:
    friday = datetime(2026, 3, 6).date()
    assert add_business_days(friday, 1) == datetime(2026, 3, 9).date()
    assert add_business_days(friday, 5) == datetime(2026, 3, 13).date()
    saturday = datetime(2026, 3, 7).date()
    assert add_business_days(saturday, 1) == datetime(2026, 3, 9).date()
    assert add_business_days(friday, 0) == friday


def test_business_day_delay_from_friday_lands_monday_same_local_time() -> None:
    friday_11 = local(BERLIN, 2026, 3, 27, 11, 0)  # Berlin springs forward on Sunday 29th
    due = after_delay(friday_11, Delay(1440, "days", business_days=True), BERLIN)
    assert due == local(BERLIN, 2026, 3, 30, 11, 0)
    two = after_delay(local(NY, 2026, 3, 5, 16, 0), Delay(2 * 1440, "days", business_days=True), NY)
    assert two == local(NY, 2026, 3, 9, 16, 0)  # Thursday + 2 business days = Monday


def test_next_send_time_applies_delay_then_window() -> None:
    sent = local(NY, 2026, 3, 5, 16, 30)  # Thursday 16:30
    due = next_send_time(sent, Delay(60, "hours"), WEEKDAYS_9_TO_5, NY)
    assert due == local(NY, 2026, 3, 6, 9, 0)  # 17:30 is after hours -> Friday 09:00
    due = next_send_time(sent, Delay(1440, "days", business_days=True), WEEKDAYS_9_TO_5, NY)
    assert due == local(NY, 2026, 3, 6, 16, 30)


# --- calling hours and preview -----------------------------------------------------------------


def test_sms_keeps_to_calling_hours_inside_a_wide_window() -> None:
    wide = SendWindow.of(range(7), "06:00", "23:00")
    sms = channel_window(wide, "sms")
    assert (sms.start, sms.end) == (8 * 60, 21 * 60)
    assert channel_window(wide, "email") == wide
    assert next_open(local(PHOENIX, 2026, 6, 1, 21, 0), sms, PHOENIX) == local(PHOENIX, 2026, 6, 2, 8, 0)
    assert is_open(local(PHOENIX, 2026, 6, 1, 20, 59, 59), sms, PHOENIX)


def test_preview_chains_steps() -> None:
    start = local(NY, 2026, 3, 6, 16, 0)  # Friday 16:00 EST
    steps = [("email", Delay(0)), ("sms", Delay(1440, "days", business_days=True)), ("voicemail", Delay(180, "hours"))]
    got = preview(start, steps, SendWindow.of(range(7), "07:00", "22:00"), NY)
    assert got == [
        local(NY, 2026, 3, 6, 16, 0),
        local(NY, 2026, 3, 9, 16, 0),  # Monday, EDT now
        local(NY, 2026, 3, 9, 19, 0),
    ]


# --- validation -----------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["9:00", "24:01", "12:60", "noon", "", "1200", "-1:00"])
def test_bad_clock_times_are_refused(bad: str) -> None:
    with pytest.raises(ScheduleError):
        parse_clock(bad)


def test_bad_windows_and_zones_are_refused() -> None:
    with pytest.raises(ScheduleError):
        SendWindow.of([], "09:00", "17:00")
    with pytest.raises(ScheduleError):
        SendWindow.of([7], "09:00", "17:00")
    with pytest.raises(ScheduleError):
        SendWindow.of([1], "17:00", "09:00")
    with pytest.raises(ScheduleError):
        zone("Mars/Olympus_Mons")
    with pytest.raises(ScheduleError):
        next_open(datetime(2026, 1, 1, 12), WEEKDAYS_9_TO_5, NY)  # naive
    with pytest.raises(ScheduleError):
        SendWindow.of(range(7), "22:00", "23:00").narrowed(8 * 60, 21 * 60)
    assert SendWindow.from_json(WEEKDAYS_9_TO_5.to_json()) == WEEKDAYS_9_TO_5


ZONES = st.sampled_from(["America/New_York", "Europe/Berlin", "America/Phoenix", "Australia/Lord_Howe", "UTC"])


@settings(max_examples=300, deadline=None)
@given(
    at=st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2028, 1, 1), timezones=st.just(UTC)),
    tz_name=ZONES,
    days=st.sets(st.integers(0, 6), min_size=1),
    start=st.integers(0, 23 * 60),
    length=st.integers(1, 8 * 60),
)
def test_next_open_is_the_earliest_open_instant(
    at: datetime, tz_name: str, days: set[int], start: int, length: int
) -> None:
    window = SendWindow(frozenset(days), start, min(start + length, 1440))
    tz = ZoneInfo(tz_name)
    got = next_open(at, window, tz)
    assert got >= at
    assert got - at < timedelta(days=8)
    local_got = got.astimezone(tz)
    assert local_got.weekday() in window.weekdays
    minute = local_got.hour * 60 + local_got.minute
    assert window.start <= minute < window.end or got == window_bounds(local_got.date(), window, tz)[0]
    assert is_open(got, window, tz)
    if got > at:  # nothing earlier was open: the minute before is closed
        assert not is_open(got - timedelta(seconds=1), window, tz)
