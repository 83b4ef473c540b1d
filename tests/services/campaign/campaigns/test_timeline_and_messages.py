"""The ledger read side and lead timelines: messages with their events, and why a next step waits."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from tests.services.campaign.campaigns.conftest import World, seed_lead, suppress


def enroll_raw(world: World, campaign_id: str, lead_id: uuid.UUID, **fields: Any) -> uuid.UUID:
    enrollment_id = uuid.uuid4()
    values = {"status": "active", "next_step_position": 1, "next_due_at": None, **fields}
    with world.db.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO enrollments (id, org_id, campaign_id, lead_id, status, next_step_position, next_due_at, "
                "created_at, updated_at) SELECT :id, org_id, id, :lead, :status, :pos, :due, now(), now() "
                "FROM campaigns WHERE id = :c"
            ),
            {
                "id": enrollment_id,
                "lead": lead_id,
                "c": campaign_id,
                "status": values["status"],
                "pos": values["next_step_position"],
                "due": values["next_due_at"],
            },
        )
    return enrollment_id


def write_message(world: World, enrollment_id: uuid.UUID, step_id: str, **fields: Any) -> uuid.UUID:
    message_id = uuid.uuid4()
    with world.db.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO messages (id, org_id, enrollment_id, step_id, campaign_id, lead_id, channel, status, "
                "hold_reason, next_attempt_at, subject, created_at, updated_at) "
                "SELECT :id, e.org_id, e.id, :step, e.campaign_id, e.lead_id, s.channel, :status, :hold, :next, "
                ":subject, now(), now() FROM enrollments e JOIN campaign_steps s ON s.id = :step WHERE e.id = :e"
            ),
            {
                "id": message_id,
                "e": enrollment_id,
                "step": step_id,
                "status": fields.get("status", "sent"),
                "hold": fields.get("hold_reason"),
                "next": fields.get("next_attempt_at"),
                "subject": fields.get("subject", "Hello"),
            },
        )
    return message_id


def add_event(world: World, message_id: uuid.UUID, type_: str, at: datetime) -> None:
    with world.db.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO message_events (id, org_id, message_id, lead_id, campaign_id, type, occurred_at, data) "
                "SELECT gen_random_uuid(), org_id, id, lead_id, campaign_id, :t, :at, '{}'::jsonb "
                "FROM messages WHERE id = :m"
            ),
            {"m": message_id, "t": type_, "at": at},
        )


def active_campaign(world: World, **overrides: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    step_fields = overrides.pop("step", {})
    c = world.a.create_campaign(world.brand_a, **overrides)
    step = world.a.add_step(c["id"], **step_fields)
    with world.db.begin() as conn:
        conn.execute(sa.text("UPDATE campaigns SET status = 'active' WHERE id = :id"), {"id": c["id"]})
    return c, step


def test_messages_list_and_detail_with_events(world: World) -> None:
    lead = seed_lead(world.db, world.a.org_id)
    c, step = active_campaign(world)
    e = enroll_raw(world, c["id"], lead, next_step_position=2)
    m = write_message(world, e, step["id"], subject="Hi Ann")
    t0 = datetime(2026, 3, 2, 10, tzinfo=UTC)
    add_event(world, m, "sent", t0)
    add_event(world, m, "opened", t0 + timedelta(hours=1))
    add_event(world, m, "delivered", t0 + timedelta(minutes=1))
    page = world.a.get("/api/messages", params={"campaign_id": c["id"]}).json()
    assert [x["id"] for x in page["items"]] == [str(m)]
    assert world.a.get("/api/messages", params={"status": "failed"}).json()["items"] == []
    assert len(world.a.get("/api/messages", params={"lead_id": str(lead), "channel": "email"}).json()["items"]) == 1
    detail = world.a.get(f"/api/messages/{m}").json()
    assert detail["subject"] == "Hi Ann"
    assert [ev["type"] for ev in detail["events"]] == ["sent", "delivered", "opened"]
    assert detail["personalization"] is None  # not written yet
    with world.db.begin() as conn:  # what the worker records when it writes the content
        conn.execute(
            sa.text(
                "INSERT INTO personalizations (id, org_id, message_id, enrollment_id, step_id, prompt_version, "
                "channel, source, model, prompt, input, content, fallback_reason, prompt_tokens, completion_tokens, "
                "cost_usd, latency_ms, created_at) SELECT gen_random_uuid(), org_id, id, enrollment_id, step_id, "
                "'v1', channel, 'local', 'template', '[]', '{}', '{}', NULL, 0, 0, 0, 0, now() "
                "FROM messages WHERE id = :m"
            ),
            {"m": m},
        )
    audit = world.a.get(f"/api/messages/{m}").json()["personalization"]
    assert (audit["source"], audit["model"], audit["cost_usd"]) == ("local", "template", 0.0)
    assert "prompt" not in audit
    assert "input" not in audit
    assert world.a.get("/api/messages", params={"status": "nonsense"}).status_code in (400, 422)


def test_timeline_explains_each_waiting_enrollment(world: World) -> None:
    org = world.a.org_id
    lead = seed_lead(world.db, org, email="ann@example.com", timezone="UTC", phone="+14155550120")
    now = datetime.now(UTC)
    reasons: dict[str, str] = {}

    c, _ = active_campaign(
        world, name="delay", send_window={"weekdays": list(range(7)), "start": "00:00", "end": "24:00"}
    )
    reasons[str(enroll_raw(world, c["id"], lead, next_due_at=now + timedelta(hours=5)))] = "waiting_for_delay"

    tomorrow = (now.weekday() + 1) % 7
    c, _ = active_campaign(world, name="window", send_window={"weekdays": [tomorrow], "start": "00:00", "end": "24:00"})
    outside = enroll_raw(world, c["id"], lead, next_due_at=now - timedelta(minutes=5))
    reasons[str(outside)] = "outside_window"

    c, _ = active_campaign(world, name="paused")
    with world.db.begin() as conn:
        conn.execute(sa.text("UPDATE campaigns SET status = 'paused' WHERE id = :id"), {"id": c["id"]})
    reasons[str(enroll_raw(world, c["id"], lead, status="paused", next_due_at=now))] = "campaign_paused"

    c, step = active_campaign(world, name="held")
    held = enroll_raw(world, c["id"], lead)
    write_message(
        world, held, step["id"], status="held", hold_reason="sender_cap", next_attempt_at=now + timedelta(hours=1)
    )
    reasons[str(held)] = "held"

    c, step = active_campaign(world, name="in flight")
    flying = enroll_raw(world, c["id"], lead)
    write_message(world, flying, step["id"], status="queued")
    reasons[str(flying)] = "in_flight"

    c, step = active_campaign(world, name="review")
    reviewed = enroll_raw(world, c["id"], lead)
    write_message(world, reviewed, step["id"], status="awaiting_review")
    reasons[str(reviewed)] = "awaiting_review"

    c, _ = active_campaign(world, name="voicemail", step={"channel": "voicemail", "script_template": "Hi"})
    reasons[str(enroll_raw(world, c["id"], lead, next_due_at=now))] = "no_consent"

    done, _ = active_campaign(world, name="done")
    finished = enroll_raw(world, done["id"], lead, status="completed", next_step_position=2)

    r = world.a.get(f"/api/leads/{lead}/timeline")
    assert r.status_code == 200, r.text
    body = r.json()
    got = {e["id"]: e["waiting"]["reason"] for e in body["enrollments"] if e["waiting"]}
    assert got == reasons
    by_id = {e["id"]: e for e in body["enrollments"]}
    assert by_id[str(finished)]["waiting"] is None
    held_info = by_id[str(held)]["waiting"]
    assert held_info["hold_reason"] == "sender_cap"
    window_info = by_id[str(outside)]["waiting"]
    assert datetime.fromisoformat(window_info["until"]).weekday() == tomorrow
    assert len(body["messages"]) == 3

    suppress(world.db, org, channel="email", kind="email", value="ann@example.com")
    body = world.a.get(f"/api/leads/{lead}/timeline").json()
    assert {e["id"]: e["waiting"]["reason"] for e in body["enrollments"] if e["waiting"]}[
        next(k for k, v in reasons.items() if v == "waiting_for_delay")
    ] == "suppressed"


def test_timeline_quiet_hours_for_sms(world: World) -> None:
    now = datetime.now(UTC)
    zones = ["Pacific/Pago_Pago", "America/Los_Angeles", "America/New_York", "Atlantic/Azores", "Europe/London",
             "Europe/Moscow", "Asia/Kolkata", "Asia/Shanghai", "Australia/Brisbane", "Pacific/Auckland",
             "Pacific/Kiritimati"]  # fmt: skip
    tz = next(z for z in zones if not 8 <= now.astimezone(ZoneInfo(z)).hour < 21)
    lead = seed_lead(world.db, world.a.org_id, timezone=tz, phone="+14155550130", consent_sms_at=now)
    c, _ = active_campaign(
        world,
        send_window={"weekdays": list(range(7)), "start": "00:00", "end": "24:00"},
        step={"channel": "sms", "sms_template": "Hi"},
    )
    enroll_raw(world, c["id"], lead, next_due_at=now - timedelta(minutes=1))
    waiting = world.a.get(f"/api/leads/{lead}/timeline").json()["enrollments"][0]["waiting"]
    assert waiting["reason"] == "quiet_hours", (tz, waiting)
    assert datetime.fromisoformat(waiting["until"]).astimezone(ZoneInfo(tz)).hour == 8


def test_timeline_of_an_unknown_or_foreign_lead_is_404(world: World) -> None:
    assert world.a.get(f"/api/leads/{uuid.uuid4()}/timeline").status_code == 404
    foreign = seed_lead(world.db, world.b.org_id)
    assert world.a.get(f"/api/leads/{foreign}/timeline").status_code == 404
    assert world.b.get(f"/api/leads/{foreign}/timeline").status_code == 200


def test_timeline_reports_the_zone_the_lead_is_scheduled_in(world: World) -> None:
    org = world.a.org_id
    now = datetime.now(UTC)
    c, _ = active_campaign(world, name="new york", timezone="America/New_York")
    no_zone = seed_lead(world.db, org)  # no zone of its own, no phone: the campaign's zone schedules it
    own_zone = seed_lead(world.db, org, timezone="Europe/Paris")
    by_phone = seed_lead(world.db, org, phone="+12065550123")  # Seattle, recorded before zones were inferred
    for lead in (no_zone, own_zone, by_phone):
        enroll_raw(world, c["id"], lead, next_due_at=now + timedelta(hours=1))
    alone = seed_lead(world.db, org)

    def zone_of(lead: uuid.UUID) -> str:
        r = world.a.get(f"/api/leads/{lead}/timeline")
        assert r.status_code == 200, r.text
        return str(r.json()["timezone"])

    assert zone_of(no_zone) == "America/New_York"
    assert zone_of(own_zone) == "Europe/Paris"
    assert zone_of(by_phone) == "America/Los_Angeles"
    assert zone_of(alone) == "UTC"  # in no campaign and no zone of its own: nothing schedules it yet


def test_timeline_explains_a_closed_window_in_the_zone_it_reports(world: World) -> None:
    now = datetime.now(UTC)
    local = now.astimezone(ZoneInfo("America/New_York"))
    tomorrow = (local.weekday() + 1) % 7
    c, _ = active_campaign(
        world,
        timezone="America/New_York",
        send_window={"weekdays": [tomorrow], "start": "00:00", "end": "24:00"},
    )
    lead = seed_lead(world.db, world.a.org_id)
    enroll_raw(world, c["id"], lead, next_due_at=now - timedelta(minutes=1))
    body = world.a.get(f"/api/leads/{lead}/timeline").json()
    waiting = body["enrollments"][0]["waiting"]
    assert body["timezone"] == "America/New_York"
    assert waiting["reason"] == "outside_window"
    assert "America/New_York" in waiting["detail"]
    assert datetime.fromisoformat(waiting["until"]).astimezone(ZoneInfo("America/New_York")).hour == 0


ALL_DAY = {"weekdays": list(range(7)), "start": "00:00", "end": "24:00"}
OFFICE = {"weekdays": [0, 1, 2, 3, 4], "start": "09:00", "end": "17:00"}
AGREEMENT_CASES: list[tuple[str, str | None, str | None, str, dict[str, Any], str]] = [
    # channel, lead zone, phone, campaign zone, window, instant
    ("email", "America/New_York", None, "UTC", OFFICE, "2026-03-06T23:00:00+00:00"),  # Friday after hours
    ("email", "America/New_York", None, "UTC", OFFICE, "2026-03-08T07:30:00+00:00"),  # the DST night itself
    ("email", "America/New_York", None, "UTC", OFFICE, "2026-03-09T13:00:00+00:00"),  # 09:00 EDT: open
    ("email", None, None, "Europe/London", OFFICE, "2026-03-30T07:59:00+00:00"),  # no zone: the campaign's (BST)
    ("sms", "America/New_York", "+12125550100", "UTC", ALL_DAY, "2026-03-09T00:59:00+00:00"),  # 20:59: open
    ("sms", "America/New_York", "+12125550100", "UTC", ALL_DAY, "2026-03-09T01:00:00+00:00"),  # 21:00: closed
    ("sms", "America/New_York", "+13055550100", "UTC", ALL_DAY, "2026-07-06T00:30:00+00:00"),  # Florida 20:00
    ("sms", None, "+12065550100", "UTC", ALL_DAY, "2026-07-06T14:00:00+00:00"),  # no zone: Seattle's number
    ("voicemail", "America/Chicago", "+12145550100", "UTC", ALL_DAY, "2026-07-05T15:00:00+00:00"),  # TX Sunday
    ("sms", "America/New_York", "+12125550100", "UTC", OFFICE, "2026-03-07T14:00:00+00:00"),  # Saturday
]


def test_gate_preview_and_timeline_agree(world: World) -> None:
    from libs.compliance_hours import Recipient
    from services.campaign.campaigns.timeline import window_reason
    from services.worker.gate import Facts, Verdict, check_time

    for channel, lead_zone, phone, campaign_zone, window, instant in AGREEMENT_CASES:
        now = datetime.fromisoformat(instant)
        case = (channel, lead_zone, phone, instant)
        gate = check_time(
            Facts(
                channel=channel,
                campaign_status="active",
                enrollment_status="active",
                phone=phone,
                lead_timezone=lead_zone,
                campaign_timezone=campaign_zone,
                send_window=window,
            ),
            now,
        )
        assert gate.verdict in (Verdict.SEND, Verdict.HOLD), case
        gate_at = now if gate.verdict is Verdict.SEND else gate.not_before

        c = world.a.create_campaign(world.brand_a, timezone=campaign_zone, send_window=window)
        world.a.add_step(c["id"], channel=channel, sms_template="Hi", script_template="Hi")
        lead = seed_lead(world.db, world.a.org_id, timezone=lead_zone, phone=phone)
        r = world.a.get(f"/api/campaigns/{c['id']}/schedule", params={"lead_id": str(lead), "start": instant})
        assert r.status_code == 200, r.text
        assert datetime.fromisoformat(r.json()["steps"][0]["at"]) == gate_at, case

        waiting = window_reason(now, now, channel, window, Recipient(lead_zone, phone, campaign_zone))
        if gate.verdict is Verdict.SEND:
            assert waiting.reason == "due", (case, waiting)
        else:
            assert waiting.until == gate_at, (case, waiting)
            expected = "outside_window" if gate.reason == "send_window" else "quiet_hours"
            assert waiting.reason == expected, (case, gate, waiting)
