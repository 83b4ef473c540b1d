"""Leads: create, read, list with filters and cursors, update, erase; validation and roles."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy import Engine

from libs.security import Role
from tests.services.campaign.leads.conftest import Actor


def test_create_normalises_contacts_and_infers_the_time_zone(alice: Actor) -> None:
    lead = alice.create_lead(email="  Jane.Doe@EXAMPLE.com ", phone="(415) 555-2671", first_name="Jane")
    assert lead["email"] == "Jane.Doe@example.com"
    assert lead["phone"] == "+14155552671"
    assert lead["timezone"] == "America/Los_Angeles"
    assert lead["status"] == "active"
    assert alice.get(f"/api/leads/{lead['id']}").json() == lead


def test_an_explicit_time_zone_wins_and_must_exist(alice: Actor) -> None:
    lead = alice.create_lead(phone="+12125550100", timezone="europe/paris")
    assert lead["timezone"] == "Europe/Paris"
    r = alice.post("/api/leads", {"phone": "+12125550101", "timezone": "Mars/Olympus"})
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "timezone"


def test_invalid_contacts_are_field_errors(alice: Actor) -> None:
    r = alice.post("/api/leads", {"email": "not-an-email", "phone": "12"})
    assert r.status_code == 422
    assert {e["field"] for e in r.json()["errors"]} == {"email", "phone"}
    r = alice.post("/api/leads", {"first_name": "Nobody"})
    assert r.status_code == 422


def test_server_owned_fields_are_refused(alice: Actor) -> None:
    r = alice.post("/api/leads", {"email": "a@example.com", "status": "active", "org_id": str(alice.org_id)})
    assert r.status_code == 422
    assert {e["field"] for e in r.json()["errors"]} >= {"status"}


def test_duplicates_by_email_else_phone_conflict(alice: Actor) -> None:
    first = alice.create_lead(email="dup@example.com")
    r = alice.post("/api/leads", {"email": "DUP@example.com"})
    assert r.status_code == 409
    assert r.json()["code"] == "DuplicateLead"
    assert r.json()["lead_id"] == first["id"]
    alice.create_lead(email=None, phone="+12125550100")
    assert alice.post("/api/leads", {"phone": "212-555-0100"}).status_code == 409
    # A phone shared with a lead that has an email is fine (a switchboard number).
    alice.create_lead(email="other@example.com", phone="+12125550100")


def test_consent_is_recorded_per_channel_with_time_and_source(alice: Actor) -> None:
    r = alice.post("/api/leads", {"phone": "+12125550100", "consent_sms": True})
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "consent_source"
    lead = alice.create_lead(phone="+12125550100", consent_sms=True, consent_source="web form 2026-11")
    assert lead["consent_sms_at"] is not None
    assert lead["consent_sms_source"] == "web form 2026-11"
    assert lead["consent_voice_at"] is None
    updated = alice.patch(f"/api/leads/{lead['id']}", {"consent_sms": False}).json()
    assert updated["consent_sms_at"] is None
    assert updated["consent_sms_source"] is None


def test_update_changes_only_the_fields_sent(alice: Actor) -> None:
    lead = alice.create_lead(email="a@example.com", first_name="A", company="Acme", custom_fields={"tier": 1})
    r = alice.patch(f"/api/leads/{lead['id']}", {"company": "Beta", "custom_fields": {"tier": 2, "vip": True}})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["first_name"], body["company"], body["custom_fields"]) == ("A", "Beta", {"tier": 2, "vip": True})
    other = alice.create_lead(email="b@example.com")
    assert alice.patch(f"/api/leads/{other['id']}", {"email": "A@example.com"}).status_code == 409
    assert alice.patch(f"/api/leads/{lead['id']}", {"email": None}).status_code == 422


def test_list_filters_and_cursor_pagination(alice: Actor) -> None:
    ids = [alice.create_lead(email=f"p{i}@example.com", company="Acme" if i % 2 else "Other")["id"] for i in range(5)]
    alice.create_lead(email="x@example.com", phone="+14155552671", first_name="Zed")
    seen, cursor = [], None
    while True:
        params = {"limit": 2, "company": "acm", **({"cursor": cursor} if cursor else {})}
        page = alice.get("/api/leads", params=params).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [ids[3], ids[1]]
    assert [i["first_name"] for i in alice.get("/api/leads", params={"q": "zed"}).json()["items"]] == ["Zed"]
    assert len(alice.get("/api/leads", params={"phone": "(415) 555-2671"}).json()["items"]) == 1
    assert len(alice.get("/api/leads", params={"email": "P2@EXAMPLE.com"}).json()["items"]) == 1
    assert len(alice.get("/api/leads", params={"q": "%"}).json()["items"]) == 0
    assert alice.get("/api/leads", params={"status": "suppressed"}).json()["items"] == []
    future = alice.get("/api/leads", params={"created_after": "2999-01-01T00:00:00Z"}).json()
    assert future["items"] == []
    assert alice.get("/api/leads", params={"limit": 1000}).status_code in (400, 422)
    assert alice.get("/api/leads", params={"cursor": "garbage"}).status_code == 422


def test_suppressed_contacts_are_created_suppressed(alice: Actor) -> None:
    alice.suppress("@blocked.com", channel="email")
    assert alice.create_lead(email="x@blocked.com")["status"] == "suppressed"
    assert alice.create_lead(email="x@fine.com")["status"] == "active"


def test_erasure_removes_personal_data_keeps_the_id_and_refuses_the_person_again(alice: Actor, engine: Engine) -> None:
    lead = alice.create_lead(
        email="gone@example.com",
        phone="+12125550100",
        first_name="Gone",
        custom_fields={"note": "x"},
        consent_sms=True,
        consent_source="form",
    )
    assert alice.as_role(Role.MEMBER).delete(f"/api/leads/{lead['id']}").status_code == 403
    assert alice.delete(f"/api/leads/{lead['id']}").status_code == 204
    assert alice.delete(f"/api/leads/{lead['id']}").status_code == 204
    erased = alice.get(f"/api/leads/{lead['id']}").json()
    assert erased["status"] == "erased"
    assert erased["erased_at"] is not None
    for name in ("email", "phone", "first_name", "consent_sms_at", "consent_sms_source", "timezone"):
        assert erased[name] is None
    assert erased["custom_fields"] == {}
    with engine.connect() as conn:
        dump = str(conn.execute(sa.text("SELECT * FROM leads")).all()) + str(
            conn.execute(sa.text("SELECT * FROM suppressions")).all()
        )
    assert "gone@example.com" not in dump
    assert "2125550100" not in dump
    kinds = alice.get("/api/suppressions").json()["items"]
    assert {(s["kind"], s["reason"], s["channel"]) for s in kinds} == {("hash", "erasure", "all")}
    assert len(kinds) == 2
    r = alice.post("/api/leads", {"email": "GONE@example.com"})
    assert r.status_code == 409
    assert r.json()["code"] == "ContactErased"
    assert alice.post("/api/leads", {"phone": "212 555 0100"}).json()["code"] == "ContactErased"
    assert alice.patch(f"/api/leads/{lead['id']}", {"first_name": "Back"}).json()["code"] == "LeadErased"


def test_viewers_read_but_cannot_write(alice: Actor) -> None:
    lead = alice.create_lead()
    viewer = alice.as_role(Role.VIEWER)
    assert viewer.get(f"/api/leads/{lead['id']}").status_code == 200
    assert viewer.get("/api/leads").status_code == 200
    assert viewer.post("/api/leads", {"email": "v@example.com"}).status_code == 403
    assert viewer.patch(f"/api/leads/{lead['id']}", {"first_name": "V"}).status_code == 403
    assert viewer.delete(f"/api/leads/{lead['id']}").status_code == 403
    assert viewer.upload(b"email\na@example.com\n").status_code == 403
    assert viewer.post("/api/suppressions", {"value": "a@example.com"}).status_code == 403


def test_requests_without_a_token_are_refused(alice: Actor) -> None:
    assert alice.client.get("/api/leads").status_code == 401
