"""Schedule preview: when each step would go out for a lead, in its local time."""

from __future__ import annotations

import uuid

from tests.services.campaign.campaigns.conftest import World, seed_lead


def test_preview_in_the_leads_time_zone_across_a_weekend_and_dst(world: World) -> None:
    c = world.a.create_campaign(
        world.brand_a, send_window={"weekdays": [0, 1, 2, 3, 4], "start": "09:00", "end": "17:00"}
    )
    world.a.add_step(c["id"])
    world.a.add_step(c["id"], delay=1, business_days=True)
    world.a.add_step(c["id"], channel="sms", sms_template="Hi", delay=10, delay_unit="hours")
    lead = seed_lead(world.db, world.a.org_id, timezone="America/New_York")
    # Friday 2026-03-06 18:00 EST; New York springs forward on Sunday the 8th.
    r = world.a.get(
        f"/api/campaigns/{c['id']}/schedule", params={"lead_id": str(lead), "start": "2026-03-06T23:00:00+00:00"}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["timezone"] == "America/New_York"
    assert [(s["local_time"], s["weekday"]) for s in body["steps"]] == [
        ("2026-03-09T09:00:00-04:00", "Monday"),  # after hours Friday -> Monday 09:00 (now EDT)
        ("2026-03-10T09:00:00-04:00", "Tuesday"),  # one business day later
        ("2026-03-11T09:00:00-04:00", "Wednesday"),  # 10 h later is 19:00, outside 09-17
    ]
    assert body["steps"][0]["at"].startswith("2026-03-09T13:00:00")


def test_preview_without_a_lead_uses_the_campaign_zone(world: World) -> None:
    c = world.a.create_campaign(world.brand_a, timezone="America/Phoenix")
    world.a.add_step(c["id"])
    r = world.a.get(f"/api/campaigns/{c['id']}/schedule", params={"start": "2026-07-01T12:00:00Z"})
    assert r.json()["timezone"] == "America/Phoenix"
    assert r.json()["steps"][0]["local_time"] == "2026-07-01T09:00:00-07:00"


def test_preview_rejects_unknown_leads_and_naive_times(world: World) -> None:
    c = world.a.create_campaign(world.brand_a)
    world.a.add_step(c["id"])
    assert world.a.get(f"/api/campaigns/{c['id']}/schedule", params={"lead_id": str(uuid.uuid4())}).status_code == 404
    foreign = seed_lead(world.db, world.b.org_id)
    assert world.a.get(f"/api/campaigns/{c['id']}/schedule", params={"lead_id": str(foreign)}).status_code == 404
    r = world.a.get(f"/api/campaigns/{c['id']}/schedule", params={"start": "2026-07-01T12:00:00"})
    assert r.status_code == 422


def test_preview_uses_each_steps_own_window(world: World) -> None:
    c = world.a.create_campaign(
        world.brand_a, send_window={"weekdays": list(range(7)), "start": "09:00", "end": "17:00"}
    )
    world.a.add_step(c["id"])
    world.a.add_step(c["id"], send_window={"weekdays": [2], "start": "18:00", "end": "19:00"})
    world.a.add_step(c["id"])
    r = world.a.get(f"/api/campaigns/{c['id']}/schedule", params={"start": "2026-07-06T08:00:00Z"})  # a Monday
    assert r.status_code == 200, r.text
    assert [s["local_time"] for s in r.json()["steps"]] == [
        "2026-07-06T09:00:00+00:00",
        "2026-07-08T18:00:00+00:00",  # its own window: Wednesday evenings
        "2026-07-09T09:00:00+00:00",  # back to the campaign's
    ]


def test_preview_keeps_the_states_calling_hours(world: World) -> None:
    c = world.a.create_campaign(
        world.brand_a, send_window={"weekdays": list(range(7)), "start": "00:00", "end": "24:00"}
    )
    world.a.add_step(c["id"], channel="sms", sms_template="Hi")
    lead = seed_lead(world.db, world.a.org_id, timezone="America/New_York", phone="+13055550100")  # Miami
    # 20:30 in New York: inside the federal 08:00-21:00 but after Florida's 20:00, so the gate holds it.
    r = world.a.get(
        f"/api/campaigns/{c['id']}/schedule", params={"lead_id": str(lead), "start": "2026-07-06T00:30:00Z"}
    )
    assert r.json()["steps"][0]["local_time"] == "2026-07-06T08:00:00-04:00", r.text


def test_preview_of_a_window_outside_calling_hours_names_the_step(world: World) -> None:
    c = world.a.create_campaign(
        world.brand_a, send_window={"weekdays": list(range(7)), "start": "08:00", "end": "17:00"}
    )
    world.a.add_step(c["id"])
    world.a.add_step(
        c["id"], channel="sms", sms_template="Hi", send_window={"weekdays": [0], "start": "22:00", "end": "23:00"}
    )
    r = world.a.get(f"/api/campaigns/{c['id']}/schedule", params={"start": "2026-07-06T08:00:00Z"})
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == "steps[2].send_window"
