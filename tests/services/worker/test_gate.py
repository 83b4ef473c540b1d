"""The gate and calling hours: time zones, DST days, state rules, window edges, consent, caps."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
import time_machine
from redis import Redis

from libs.schedule import ScheduleError, SendWindow
from services.worker import jobs
from services.worker.gate import Facts, Verdict, check
from services.worker.quiet_hours import (
    FEDERAL,
    STATE_RULES,
    earliest_allowed,
    intersect,
    is_allowed,
    recipient_zones,
    us_state,
)
from services.worker.ratelimit import Limit, RateLimiter
from tests.services.worker.conftest import drain, messages
from tests.services.worker.factories import create_world
from tests.support.smtp import SmtpServer

CONSENT = datetime(2026, 1, 1, tzinfo=UTC)
ALWAYS = {"weekdays": [0, 1, 2, 3, 4, 5, 6], "start": "00:00", "end": "24:00"}
NY, LA, PHX, HNL = (
    ZoneInfo(z) for z in ("America/New_York", "America/Los_Angeles", "America/Phoenix", "Pacific/Honolulu")
)


def sms(phone: str = "+12125550100", tz: str | None = None, **kw: object) -> Facts:
    base: dict[str, object] = {
        "channel": "sms",
        "campaign_status": "active",
        "enrollment_status": "active",
        "phone": phone,
        "lead_timezone": tz,
        "consent_sms_at": CONSENT,
        "consent_voice_at": CONSENT,
        "send_window": ALWAYS,
    }
    base.update(kw)
    return Facts(**base)  # type: ignore[arg-type]


def local(tz: ZoneInfo, *args: int) -> datetime:
    return datetime(*args, tzinfo=tz).astimezone(UTC)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("tz", "phone"),
    [(NY, "+12125550100"), (LA, "+14155550100"), (PHX, "+16025550100"), (HNL, "+18085550100")],
)
def test_calling_hours_edges_in_each_zone(tz: ZoneInfo, phone: str) -> None:
    at_2059 = local(tz, 2026, 7, 15, 20, 59, 59)
    assert check(sms(phone), at_2059).verdict is Verdict.SEND
    at_2100 = local(tz, 2026, 7, 15, 21, 0, 0)
    held = check(sms(phone), at_2100)
    assert (held.verdict, held.reason) == (Verdict.HOLD, "quiet_hours")
    assert held.not_before == local(tz, 2026, 7, 16, 8, 0, 0)  # deferred to 08:00 local, not dropped
    early = check(sms(phone), local(tz, 2026, 7, 16, 7, 59, 59))
    assert early.not_before == local(tz, 2026, 7, 16, 8, 0, 0)


@pytest.mark.parametrize(
    ("day", "expected_utc_hour"),
    [((2026, 3, 8), 12), ((2026, 11, 1), 13)],  # spring forward (EDT, UTC-4) and fall back (EST, UTC-5)
)
def test_dst_change_days_open_at_8_local(day: tuple[int, int, int], expected_utc_hour: int) -> None:
    night = local(NY, *day, 3, 30) if day[1] == 3 else local(NY, *day, 1, 30)
    held = check(sms(), night)
    assert held.verdict is Verdict.HOLD
    assert held.not_before == datetime(*day, expected_utc_hour, 0, tzinfo=UTC)


def test_time_machine_drives_the_clock_across_a_dst_night() -> None:
    with time_machine.travel(datetime(2026, 3, 8, 6, 59, tzinfo=UTC), tick=False):  # 01:59 EST, 2h before 8 EDT
        held = check(sms())
    assert held.not_before == datetime(2026, 3, 8, 12, 0, tzinfo=UTC)
    with time_machine.travel(datetime(2026, 3, 8, 12, 0, tzinfo=UTC), tick=False):
        assert check(sms()).verdict is Verdict.SEND


def test_florida_stops_at_8pm() -> None:
    assert us_state("+13055550100") == "FL"
    at_2030 = local(NY, 2026, 7, 15, 20, 30)
    held = check(sms("+13055550100"), at_2030)
    assert (held.verdict, held.reason) == (Verdict.HOLD, "quiet_hours_fl")
    assert held.not_before == local(NY, 2026, 7, 16, 8, 0)
    assert check(sms("+12125550100"), at_2030).verdict is Verdict.SEND  # New York keeps the federal 21:00


def test_texas_sunday_starts_at_noon() -> None:
    sunday_11 = local(ZoneInfo("America/Chicago"), 2026, 7, 19, 11, 0)
    held = check(sms("+19405550100"), sunday_11)
    assert (held.reason, held.not_before) == ("quiet_hours_tx", local(ZoneInfo("America/Chicago"), 2026, 7, 19, 12, 0))


def test_every_state_rule_cites_its_source() -> None:
    for rule in STATE_RULES.values():
        assert rule.source
        assert rule.windows
        assert all(w.start >= 8 * 60 and w.end <= 21 * 60 for w in rule.windows)  # never looser than federal


def test_lead_timezone_wins_over_the_number() -> None:
    assert recipient_zones("Europe/Paris", "+12125550100") == (ZoneInfo("Europe/Paris"),)
    at = local(NY, 2026, 7, 15, 22, 0)  # 04:00 in Paris
    assert check(sms(tz="Europe/Paris"), at).not_before == local(ZoneInfo("Europe/Paris"), 2026, 7, 16, 8, 0)


def test_a_number_spanning_two_zones_uses_hours_open_in_both() -> None:
    phone = "+12085550100"  # Idaho: Mountain (Boise) and Pacific time
    mountain = ZoneInfo("America/Boise")
    zones = recipient_zones(None, phone)
    assert set(zones) == {mountain, LA}
    # 08:30 Mountain is 07:30 Pacific: too early there, so wait for 08:00 Pacific.
    held = check(sms(phone), local(mountain, 2026, 7, 15, 8, 30))
    assert held.not_before == local(LA, 2026, 7, 15, 8, 0)
    # 20:30 Pacific is 21:30 Mountain: too late there.
    assert check(sms(phone), local(LA, 2026, 7, 15, 20, 30)).verdict is Verdict.HOLD


def test_a_non_geographic_number_waits_for_hours_open_everywhere_it_may_ring() -> None:
    phone = "+15005550100"  # non-geographic: every North American zone, Guam to Adak
    decision = check(sms(phone), local(NY, 2026, 7, 15, 12, 0))
    assert decision.verdict is Verdict.HOLD
    assert decision.not_before is not None
    assert is_allowed(decision.not_before, FEDERAL, recipient_zones(None, phone))


def test_zones_that_never_share_calling_hours_raise() -> None:
    office_hours = (SendWindow.of(range(7), "09:00", "17:00"),)
    with pytest.raises(ScheduleError):
        earliest_allowed(datetime(2026, 7, 15, tzinfo=UTC), office_hours, (ZoneInfo("UTC"), ZoneInfo("Etc/GMT-12")))


def test_job_enqueued_at_2059_that_runs_at_2101_is_deferred() -> None:
    assert check(sms(), local(NY, 2026, 7, 15, 20, 59)).verdict is Verdict.SEND
    assert check(sms(), local(NY, 2026, 7, 15, 21, 1)).verdict is Verdict.HOLD


def test_campaign_window_edges_in_the_lead_zone() -> None:
    window = {"weekdays": [0, 1, 2, 3, 4], "start": "09:00", "end": "17:00"}
    email = Facts(
        "email", "active", "active", email="a@x.test", lead_timezone="America/Los_Angeles", send_window=window
    )
    assert check(email, local(LA, 2026, 7, 15, 16, 59, 59)).verdict is Verdict.SEND
    held = check(email, local(LA, 2026, 7, 15, 17, 0))
    assert (held.reason, held.not_before) == ("send_window", local(LA, 2026, 7, 16, 9, 0))
    friday_evening = check(email, local(LA, 2026, 7, 17, 18, 0))
    assert friday_evening.not_before == local(LA, 2026, 7, 20, 9, 0)  # Monday
    sms_in_window = sms(tz="America/Los_Angeles", send_window=window)
    assert check(sms_in_window, local(LA, 2026, 7, 15, 8, 30)).reason == "send_window"


def test_consent_suppression_and_lifecycle() -> None:
    now = local(NY, 2026, 7, 15, 12, 0)
    assert check(sms(consent_sms_at=None), now).reason == "no_consent"
    assert check(sms(channel="voicemail", consent_voice_at=None), now).reason == "no_consent"
    assert check(sms(suppressed=True), now).reason == "suppressed"
    assert check(sms(phone=None), now).reason == "no_phone_number"
    assert check(sms(enrollment_status="stopped"), now).verdict is Verdict.SKIP
    assert check(sms(campaign_status="archived"), now).verdict is Verdict.SKIP
    paused = check(sms(campaign_status="paused"), now)
    assert (paused.verdict, paused.reason) == (Verdict.HOLD, "campaign_paused")
    assert paused.not_before is not None
    assert paused.not_before > now


def test_caps_hold_until_the_window_frees(redis: Redis) -> None:
    limiter = RateLimiter(redis)
    now = datetime(2026, 7, 15, 12, 30, 10, tzinfo=UTC)
    hourly = Limit("sender:s1:hour", 2, 3600)
    domain = Limit("domain:o1:example.com:minute", 10, 60)
    assert limiter.take([hourly, domain], now).allowed
    assert limiter.take([hourly, domain], now).allowed
    refused = limiter.take([hourly, domain], now)
    assert not refused.allowed
    assert refused.limit == hourly
    assert refused.retry_at == datetime(2026, 7, 15, 13, 0, 1, tzinfo=UTC)
    # A refusal takes nothing from the other limits.
    assert int(redis.get(domain.bucket(now)[0]) or 0) == 2
    assert limiter.take([hourly], now + timedelta(hours=1)).allowed


def test_only_north_american_numbers_have_a_state() -> None:
    assert us_state("+19405550100") == "TX"
    assert us_state("+442071234567") is None  # London: 207 is also Maine's area code
    assert us_state(None) is None
    assert us_state("not a number") is None


def test_without_a_lead_zone_or_a_number_the_fallback_zone_is_used() -> None:
    assert recipient_zones(None, None) == (ZoneInfo("UTC"),)
    assert recipient_zones(None, None, fallback="Europe/Paris") == (ZoneInfo("Europe/Paris"),)
    assert recipient_zones("Not/AZone", None, fallback="Europe/Paris") == (ZoneInfo("Europe/Paris"),)


def test_a_campaign_window_outside_calling_hours_never_opens() -> None:
    mornings = (SendWindow.of(range(7), "06:00", "08:00"),)
    evenings = (SendWindow.of(range(7), "21:00", "23:00"),)  # touches 21:00 only at its start
    weekend = (SendWindow.of({5, 6}, "09:00", "17:00"),)
    weekdays = (SendWindow.of(range(5), "09:00", "17:00"),)
    assert intersect(mornings, FEDERAL) == ()
    assert intersect(evenings, FEDERAL) == ()
    assert intersect(weekend, weekdays) == ()
    assert intersect(weekdays, FEDERAL) == weekdays
    late = sms(send_window={"weekdays": [0, 1, 2, 3, 4, 5, 6], "start": "21:00", "end": "23:00"})
    held = check(late, local(NY, 2026, 7, 15, 21, 30))
    assert (held.verdict, held.reason) == (Verdict.HOLD, "send_window_outside_calling_hours")
    assert held.not_before == local(NY, 2026, 7, 15, 21, 45)  # looked at again in 15 minutes


def test_voicemail_keeps_calling_hours_too() -> None:
    at_2130 = local(NY, 2026, 7, 15, 21, 30)
    held = check(sms(channel="voicemail"), at_2130)
    assert (held.verdict, held.reason) == (Verdict.HOLD, "quiet_hours")
    assert held.not_before == local(NY, 2026, 7, 16, 8, 0)
    assert held.detail == {"zones": ["America/New_York"]}


def test_a_number_without_a_zone_is_timed_in_the_campaign_zone() -> None:
    tokyo = ZoneInfo("Asia/Tokyo")
    facts = sms("+12125550", campaign_timezone="Asia/Tokyo")  # a possible number libphonenumber has no zone for
    assert check(facts, local(tokyo, 2026, 7, 15, 12, 0)).verdict is Verdict.SEND
    held = check(facts, local(tokyo, 2026, 7, 15, 22, 0))
    assert held.not_before == local(tokyo, 2026, 7, 16, 8, 0)


def test_zones_with_no_shared_hours_skip_with_the_zones_named() -> None:
    one_hour = {"weekdays": [0, 1, 2, 3, 4, 5, 6], "start": "09:00", "end": "10:00"}
    decision = check(sms("+15005550100", send_window=one_hour), local(NY, 2026, 7, 15, 12, 0))
    assert (decision.verdict, decision.reason, decision.not_before) == (
        Verdict.SKIP,
        "no_common_calling_window",
        None,
    )
    assert {"Pacific/Guam", "America/Adak"} <= set(decision.detail["zones"])


def test_a_malformed_send_window_means_always_open() -> None:
    noon = local(NY, 2026, 7, 15, 12, 0)
    assert check(sms(send_window={"weekdays": "often"}), noon).verdict is Verdict.SEND
    email = Facts("email", "active", "active", email="a@x.test", send_window={"start": "late"})
    assert check(email, local(NY, 2026, 7, 15, 3, 0)).verdict is Verdict.SEND


@pytest.mark.parametrize("lead_timezone", [None, "Not/AZone"])
def test_email_without_a_known_lead_zone_uses_the_campaign_zone(lead_timezone: str | None) -> None:
    window = {"weekdays": [0, 1, 2, 3, 4], "start": "09:00", "end": "17:00"}
    email = Facts(
        "email",
        "active",
        "active",
        email="a@x.test",
        lead_timezone=lead_timezone,
        campaign_timezone="America/Los_Angeles",
        send_window=window,
    )
    assert check(email, local(LA, 2026, 7, 15, 16, 0)).verdict is Verdict.SEND
    held = check(email, local(LA, 2026, 7, 15, 17, 0))
    assert (held.reason, held.not_before) == ("send_window", local(LA, 2026, 7, 16, 9, 0))
    assert held.detail == {"zones": ["America/Los_Angeles"]}


def test_each_lifecycle_end_skips_with_its_reason() -> None:
    now = local(NY, 2026, 7, 15, 12, 0)
    ended = {
        "campaign_completed": sms(campaign_status="completed"),
        "campaign_archived": sms(campaign_status="archived"),
        "enrollment_completed": sms(enrollment_status="completed"),
        "enrollment_stopped": sms(enrollment_status="stopped"),
        "lead_unsubscribed": sms(lead_status="unsubscribed"),
        "lead_erased": sms(lead_status="erased"),
        "no_email_address": Facts("email", "active", "active", email=None),
    }
    for reason, facts in ended.items():
        decision = check(facts, now)
        assert (decision.verdict, decision.reason, decision.not_before) == (Verdict.SKIP, reason, None)


def test_a_paused_enrollment_is_looked_at_again_in_15_minutes() -> None:
    now = local(NY, 2026, 7, 15, 12, 0)
    held = check(sms(enrollment_status="paused"), now)
    assert (held.verdict, held.reason) == (Verdict.HOLD, "enrollment_paused")
    assert held.not_before == now + timedelta(minutes=15)
    assert check(sms(lead_status="active"), now).verdict is Verdict.SEND


def _only_on(weekday: int) -> dict[str, object]:
    return {"weekdays": [weekday], "start": "00:00", "end": "24:00"}


def test_a_steps_own_window_holds_its_message_and_schedules_the_advance_to_it(
    ctx: jobs.Context, redis: Redis, engine: sa.Engine, smtp: SmtpServer
) -> None:
    ny = ZoneInfo("America/New_York")  # the factories' lead zone
    later = (datetime.now(ny) + timedelta(days=2)).date()
    # The campaign's window is always open; the second step keeps to a day two days from now.
    world = create_world(engine, channels=("email", "email"), smtp=(smtp.host, smtp.port))
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE campaign_steps SET send_window = CAST(:w AS jsonb) WHERE id = :id"),
            {"w": json.dumps(_only_on(later.weekday())), "id": world.step_ids[1]},
        )
    drain(ctx, redis)
    assert [r.status for r in messages(engine, world)] == ["sent"]
    with engine.begin() as conn:
        due = conn.execute(
            sa.text("SELECT next_due_at FROM enrollments WHERE id = :id"), {"id": world.enrollment_ids[0]}
        ).scalar_one()
    assert due.astimezone(ny).replace(tzinfo=None) == datetime.combine(later, datetime.min.time())

    # A step whose own window is closed now is held by it, though the campaign's is open.
    held = create_world(engine, channels=("email",), smtp=(smtp.host, smtp.port))
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE campaign_steps SET send_window = CAST(:w AS jsonb) WHERE id = :id"),
            {"w": json.dumps(_only_on(later.weekday())), "id": held.step_ids[0]},
        )
    drain(ctx, redis)
    [row] = messages(engine, held)
    assert (row.status, row.hold_reason) == ("held", "send_window")
    assert row.next_attempt_at.astimezone(ny).date() == later
