"""Enrollment: by ids, import or filter, in set-based SQL, with every skipped lead's reason."""

from __future__ import annotations

import uuid
from datetime import timedelta

import sqlalchemy as sa

from tests.services.campaign.campaigns.conftest import NOW, World, seed_lead, suppress


def _status(world: World, campaign_id: str, status: str) -> None:
    with world.db.begin() as conn:
        conn.execute(sa.text("UPDATE campaigns SET status = :s WHERE id = :id"), {"s": status, "id": campaign_id})


def _enrollments(world: World, campaign_id: str) -> list[sa.Row]:  # type: ignore[type-arg]
    with world.db.connect() as conn:
        return list(
            conn.execute(
                sa.text(
                    "SELECT lead_id, status, next_step_position, next_due_at FROM enrollments "
                    "WHERE campaign_id = :c ORDER BY next_due_at NULLS FIRST, lead_id"
                ),
                {"c": campaign_id},
            )
        )


def test_enroll_by_ids_skips_with_reasons(world: World) -> None:
    org = world.a.org_id
    c = world.a.create_campaign(world.brand_a)
    world.a.add_step(c["id"])
    ok1, ok2 = seed_lead(world.db, org, first_name="Ann"), seed_lead(world.db, org)
    no_email = seed_lead(world.db, org, email=None, phone="+14155550101")
    unsubscribed = seed_lead(world.db, org, email="Gone@Example.com")
    suppress(world.db, org, channel="email", kind="email", value="gone@example.com")
    blocked_domain = seed_lead(world.db, org, email="x@blocked.example")
    suppress(world.db, org, channel="all", kind="domain", value="blocked.example")
    sms_only_stop = seed_lead(world.db, org, email="sms-stop@example.com", phone="+14155550102")
    suppress(world.db, org, channel="sms", kind="phone", value="+14155550102")  # does not block email
    erased = seed_lead(world.db, org, email=None, status="erased", erased_at=NOW)
    elsewhere = seed_lead(world.db, org)
    other = world.a.create_campaign(world.brand_a, name="Other")
    world.a.add_step(other["id"])
    assert (
        world.a.post(f"/api/campaigns/{other['id']}/enrollments", {"lead_ids": [str(elsewhere)]}).json()["enrolled"]
        == 1
    )
    foreign = seed_lead(world.db, world.b.org_id)
    ids = [ok1, ok2, no_email, unsubscribed, blocked_domain, sms_only_stop, erased, elsewhere, foreign, uuid.uuid4()]

    r = world.a.post(f"/api/campaigns/{c['id']}/enrollments", {"lead_ids": [str(i) for i in ids]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["enrolled"] == 3
    assert body["skipped"] == {
        "no_email": 1,
        "suppressed": 2,
        "erased": 1,
        "active_in_other_campaign": 1,
        "not_found": 2,
    }
    reasons = {(s["lead_id"], s["reason"]) for s in body["skipped_leads"]}
    assert (str(unsubscribed), "suppressed") in reasons
    assert (str(blocked_domain), "suppressed") in reasons
    assert (str(foreign), "not_found") in reasons
    rows = _enrollments(world, c["id"])
    assert {r.lead_id for r in rows} == {ok1, ok2, sms_only_stop}
    assert {(r.status, r.next_step_position, r.next_due_at) for r in rows} == {("paused", 1, None)}  # draft

    again = world.a.post(f"/api/campaigns/{c['id']}/enrollments", {"lead_ids": [str(ok1)]}).json()
    assert again["enrolled"] == 0
    assert again["skipped"] == {"already_enrolled": 1}
    # B never sees A's enrollments, and B's lead stays untouched.
    with world.db.connect() as conn:
        assert (
            conn.execute(sa.text("SELECT count(*) FROM enrollments WHERE lead_id = :l"), {"l": foreign}).scalar() == 0
        )


def test_sms_and_voicemail_need_phone_and_consent(world: World) -> None:
    org = world.a.org_id
    c = world.a.create_campaign(world.brand_a)
    world.a.add_step(c["id"], channel="sms", sms_template="Hi {{ first_name }}")
    world.a.add_step(c["id"], channel="voicemail", script_template="Hello", delay=1)
    both = seed_lead(world.db, org, phone="+14155550110", consent_sms_at=NOW, consent_voice_at=NOW)
    sms_only = seed_lead(world.db, org, phone="+14155550111", consent_sms_at=NOW)
    none = seed_lead(world.db, org, phone="+14155550112")
    no_phone = seed_lead(world.db, org)
    stop = seed_lead(world.db, org, phone="+14155550113", consent_sms_at=NOW, consent_voice_at=NOW)
    suppress(world.db, org, channel="sms", kind="phone", value="+14155550113")  # STOP covers voicemail too
    body = world.a.post(
        f"/api/campaigns/{c['id']}/enrollments", {"lead_ids": [str(i) for i in (both, sms_only, none, no_phone, stop)]}
    ).json()
    # Consent to texts only: enrolled, the voicemail step alone is skipped at send time.
    assert body["enrolled"] == 2
    assert body["skipped"] == {"no_sms_consent": 1, "no_phone": 1, "suppressed": 1}


def test_a_lead_without_sms_consent_is_enrolled_for_the_email_steps(world: World) -> None:
    org = world.a.org_id
    c = world.a.create_campaign(world.brand_a)
    world.a.add_step(c["id"], channel="sms", sms_template="Hi {{ first_name }}")
    world.a.add_step(c["id"], delay=1)
    email_only = seed_lead(world.db, org, phone="+14155550120")
    unreachable = seed_lead(world.db, org, email=None, phone="+14155550121")
    body = world.a.post(
        f"/api/campaigns/{c['id']}/enrollments", {"lead_ids": [str(email_only), str(unreachable)]}
    ).json()
    assert body["enrolled"] == 1
    assert body["skipped"] == {"no_email": 1}


def test_enroll_by_filter_and_by_import(world: World) -> None:
    org = world.a.org_id
    c = world.a.create_campaign(world.brand_a)
    world.a.add_step(c["id"])
    acme = [seed_lead(world.db, org, company="ACME", custom_fields={"tier": "gold"}) for _ in range(3)]
    seed_lead(world.db, org, company="ACME", custom_fields={"tier": "silver"})
    seed_lead(world.db, org, company="Initech")
    seed_lead(world.db, world.b.org_id, company="ACME", custom_fields={"tier": "gold"})  # B's: never picked
    r = world.a.post(
        f"/api/campaigns/{c['id']}/enrollments", {"filter": {"company": "acme", "custom": {"tier": "gold"}}}
    )
    assert r.status_code == 200, r.text
    assert r.json()["enrolled"] == 3
    assert {row.lead_id for row in _enrollments(world, c["id"])} == set(acme)

    import_id = uuid.uuid4()
    with world.db.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO lead_imports (id, org_id, status, default_region, size_bytes, created_at, updated_at) "
                "VALUES (:id, :org, 'completed', 'US', 0, now(), now())"
            ),
            {"id": import_id, "org": org},
        )
    imported = [seed_lead(world.db, org, import_id=import_id) for _ in range(2)]
    c2 = world.a.create_campaign(world.brand_a, name="From import")
    world.a.add_step(c2["id"])
    r = world.a.post(f"/api/campaigns/{c2['id']}/enrollments", {"import_id": str(import_id)})
    assert r.json()["enrolled"] == 2
    assert {row.lead_id for row in _enrollments(world, c2["id"])} == set(imported)
    foreign_import = world.b.post(f"/api/campaigns/{c2['id']}/enrollments", {"import_id": str(import_id)})
    assert foreign_import.status_code == 404
    r = world.a.post(f"/api/campaigns/{c2['id']}/enrollments", {"import_id": str(uuid.uuid4())})
    assert r.status_code == 422


def test_pacing_spreads_first_steps_over_days(world: World) -> None:
    org = world.a.org_id
    c = world.a.create_campaign(world.brand_a, pacing_per_day=2)
    world.a.add_step(c["id"], delay=30, delay_unit="minutes")
    _status(world, c["id"], "active")
    leads = [seed_lead(world.db, org) for _ in range(5)]
    body = world.a.post(f"/api/campaigns/{c['id']}/enrollments", {"lead_ids": [str(i) for i in leads]}).json()
    assert body["enrolled"] == 5
    rows = _enrollments(world, c["id"])
    assert {r.status for r in rows} == {"active"}
    first = rows[0].next_due_at
    offsets = sorted(round((r.next_due_at - first) / timedelta(days=1)) for r in rows)
    assert offsets == [0, 0, 1, 1, 2]
    with world.db.connect() as conn:
        now = conn.execute(sa.text("SELECT now()")).scalar_one()
    assert timedelta(minutes=29) < first - now < timedelta(minutes=31)


def test_enrollment_needs_steps_and_bounds_the_request(world: World) -> None:
    c = world.a.create_campaign(world.brand_a)
    lead = seed_lead(world.db, world.a.org_id)
    r = world.a.post(f"/api/campaigns/{c['id']}/enrollments", {"lead_ids": [str(lead)]})
    assert r.status_code == 422
    world.a.add_step(c["id"])
    too_many = [str(uuid.uuid4()) for _ in range(10_001)]
    assert world.a.post(f"/api/campaigns/{c['id']}/enrollments", {"lead_ids": too_many}).status_code in (413, 422)
    both = {"lead_ids": [str(lead)], "filter": {}}
    assert world.a.post(f"/api/campaigns/{c['id']}/enrollments", both).status_code == 422
    assert world.a.post(f"/api/campaigns/{c['id']}/enrollments", {}).status_code == 422


def test_list_and_stop_enrollments(world: World) -> None:
    org = world.a.org_id
    c = world.a.create_campaign(world.brand_a)
    world.a.add_step(c["id"])
    leads = [seed_lead(world.db, org) for _ in range(3)]
    world.a.post(f"/api/campaigns/{c['id']}/enrollments", {"lead_ids": [str(i) for i in leads]})
    page = world.a.get(f"/api/campaigns/{c['id']}/enrollments", params={"limit": 2}).json()
    assert len(page["items"]) == 2
    rest = world.a.get(f"/api/campaigns/{c['id']}/enrollments", params={"cursor": page["next_cursor"]}).json()
    assert len(rest["items"]) == 1
    eid = page["items"][0]["id"]
    assert world.a.delete(f"/api/campaigns/{c['id']}/enrollments/{eid}").status_code == 204
    got = world.a.get(f"/api/campaigns/{c['id']}/enrollments/{eid}").json()
    assert got["status"] == "stopped"
    assert got["stopped_reason"] == "removed"
    stopped = world.a.get(f"/api/campaigns/{c['id']}/enrollments", params={"status": "stopped"}).json()
    assert [e["id"] for e in stopped["items"]] == [eid]


def test_pause_resume_and_archive_move_enrollments(world: World) -> None:
    org = world.a.org_id
    c = world.a.create_campaign(world.brand_a)
    world.a.add_step(c["id"])
    _status(world, c["id"], "active")
    leads = [seed_lead(world.db, org) for _ in range(2)]
    world.a.post(f"/api/campaigns/{c['id']}/enrollments", {"lead_ids": [str(i) for i in leads]})
    world.a.post(f"/api/campaigns/{c['id']}/pause")
    assert {r.status for r in _enrollments(world, c["id"])} == {"paused"}
    with world.db.begin() as conn:  # a due time in the past stays due, never earlier than the resume
        conn.execute(sa.text("UPDATE enrollments SET next_due_at = now() - interval '3 days'"))
    world.a.post(f"/api/campaigns/{c['id']}/resume")
    rows = _enrollments(world, c["id"])
    assert {r.status for r in rows} == {"active"}
    with world.db.connect() as conn:
        now = conn.execute(sa.text("SELECT now()")).scalar_one()
    assert all(now - timedelta(minutes=1) < r.next_due_at <= now + timedelta(seconds=1) for r in rows)
    world.a.post(f"/api/campaigns/{c['id']}/pause")
    world.a.post(f"/api/campaigns/{c['id']}/archive")
    assert {r.status for r in _enrollments(world, c["id"])} == {"stopped"}
    assert world.a.post(f"/api/campaigns/{c['id']}/enrollments", {"lead_ids": [str(leads[0])]}).status_code == 409
