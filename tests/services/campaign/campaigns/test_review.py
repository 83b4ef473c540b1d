"""Review mode's API: campaign review settings, the review queue, approving and rejecting, tenancy and scopes."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa

from libs.security import Role
from tests.services.campaign.campaigns.conftest import World, seed_lead

WRITTEN = {"subject": "Idea for Acme", "body": "Hello Ada, a short note from Acme."}


def awaiting(world: World, channel: str = "email", steps: int = 2, **body: Any) -> tuple[str, uuid.UUID, uuid.UUID]:
    """A campaign of ``steps`` steps, one message awaiting review on the first: (campaign, message, enrollment)."""
    campaign = world.a.create_campaign(world.brand_a, review_mode="all")
    first = world.a.add_step(campaign["id"], channel=channel, **body)
    for _ in range(steps - 1):
        world.a.add_step(campaign["id"], delay=2, delay_unit="days")
    lead = seed_lead(world.db, world.a.org_id, email="ada@example.test", phone="+12125550100")
    enrollment, message = uuid.uuid4(), uuid.uuid4()
    with world.db.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO enrollments (id, org_id, campaign_id, lead_id, status, next_step_position, created_at, "
                "updated_at) SELECT :e, org_id, id, :lead, 'active', 1, now(), now() FROM campaigns WHERE id = :c"
            ),
            {"e": enrollment, "lead": lead, "c": campaign["id"]},
        )
        conn.execute(
            sa.text(
                "INSERT INTO messages (id, org_id, enrollment_id, step_id, campaign_id, lead_id, channel, status, "
                "subject, body, created_at, updated_at) SELECT :m, e.org_id, e.id, :step, e.campaign_id, e.lead_id, "
                ":channel, 'awaiting_review', :subject, :body, now(), now() FROM enrollments e WHERE e.id = :e"
            ),
            {
                "m": message,
                "e": enrollment,
                "step": first["id"],
                "channel": channel,
                "subject": WRITTEN["subject"] if channel == "email" else None,
                "body": WRITTEN["body"],
            },
        )
    return campaign["id"], message, enrollment


def row(world: World, table: str, id_: uuid.UUID) -> Any:
    with world.db.connect() as conn:
        return conn.execute(sa.text(f"SELECT * FROM {table} WHERE id = :id"), {"id": id_}).one()


def test_review_settings_are_kept_validated_and_cloned(world: World) -> None:
    created = world.a.create_campaign(
        world.brand_a, review_mode="first_n", review_first_n=3, review_deadline_hours=48, review_after_deadline="send"
    )
    assert (created["review_mode"], created["review_first_n"]) == ("first_n", 3)
    assert (created["review_deadline_hours"], created["review_after_deadline"]) == (48, "send")
    plain = world.a.create_campaign(world.brand_a)
    assert (plain["review_mode"], plain["review_deadline_hours"], plain["review_after_deadline"]) == (
        "off",
        None,
        "skip",
    )

    for body, field in (
        ({"review_mode": "first_n"}, "review_first_n"),  # first_n needs an N
        ({"review_mode": "sometimes"}, "review_mode"),
        ({"review_deadline_hours": 0}, "review_deadline_hours"),
        ({"review_after_deadline": "later"}, "review_after_deadline"),
    ):
        r = world.a.post("/api/campaigns", {"brand_id": str(world.brand_a), "name": "x", **body})
        assert r.status_code == 422, (body, r.text)
        assert field in [e["field"] for e in r.json()["errors"]], (body, r.text)

    r = world.a.patch(f"/api/campaigns/{created['id']}", {"review_first_n": 0})
    assert r.status_code == 422
    assert [e["field"] for e in r.json()["errors"]] == ["review_first_n"]
    r = world.a.patch(f"/api/campaigns/{created['id']}", {"review_mode": None})
    assert r.status_code == 422
    assert [e["field"] for e in r.json()["errors"]] == ["review_mode"]
    r = world.a.patch(f"/api/campaigns/{created['id']}", {"review_mode": "all", "review_deadline_hours": None})
    assert r.status_code == 200, r.text
    assert (r.json()["review_mode"], r.json()["review_deadline_hours"]) == ("all", None)
    copy = world.a.post(f"/api/campaigns/{created['id']}/clone", {})
    assert copy.status_code == 201, copy.text
    assert (copy.json()["review_mode"], copy.json()["review_first_n"], copy.json()["review_after_deadline"]) == (
        "all",
        3,
        "send",
    )


def test_reject_skips_and_moves_the_enrollment_to_the_next_step(world: World) -> None:
    campaign_id, message, enrollment = awaiting(world)
    r = world.a.post(f"/api/messages/{message}/reject", {"reason": "  "})
    assert r.status_code == 422
    assert [e["field"] for e in r.json()["errors"]] == ["reason"]
    r = world.a.post(f"/api/messages/{message}/reject", {"reason": "wrong tone"})
    assert r.status_code == 200, r.text
    stored = row(world, "messages", message)
    assert (stored.status, stored.hold_reason, stored.review_note) == ("skipped", "review_rejected", "wrong tone")
    assert stored.reviewed_by is not None
    assert stored.reviewed_at is not None
    moved = row(world, "enrollments", enrollment)
    assert (moved.status, moved.next_step_position) == ("active", 2)
    assert moved.next_due_at is not None
    assert world.a.post(f"/api/messages/{message}/reject", {"reason": "again"}).status_code == 409
    queue = world.a.get(f"/api/campaigns/{campaign_id}/review")
    assert queue.json()["items"] == []


def test_an_approval_checks_the_text_that_will_go_out(world: World) -> None:
    _, message, _ = awaiting(world, channel="sms", steps=1, sms_template="Hi {{ lead.first_name }}")
    r = world.a.post(f"/api/messages/{message}/approve", {"subject": "A subject"})
    assert r.status_code == 422
    assert [e["field"] for e in r.json()["errors"]] == ["subject"]  # an SMS has none
    for text, reason in (
        ("Hi {{ lead.first_name }}", "placeholder_left"),
        ("See bit.ly/deal", "foreign_link"),
        ("", None),
    ):
        r = world.a.post(f"/api/messages/{message}/approve", {"body": text})
        assert r.status_code == 422, (text, r.text)
        if reason:
            assert [(e["field"], e["reason"]) for e in r.json()["errors"]] == [("body", reason)]
        else:
            assert [e["field"] for e in r.json()["errors"]] == ["body"]
    assert row(world, "messages", message).status == "awaiting_review"
    link = {"body": "Hi Ada, more at https://acme.example/why"}
    r = world.a.post(f"/api/messages/{message}/approve", link)
    assert r.status_code == 422  # the brand has no website: no link may go out
    assert [(e["field"], e["reason"]) for e in r.json()["errors"]] == [("body", "foreign_link")]
    with world.db.begin() as conn:
        conn.execute(
            sa.text("UPDATE brands SET website = 'https://www.acme.example' WHERE id = :b"), {"b": world.brand_a}
        )
    r = world.a.post(f"/api/messages/{message}/approve", link)
    assert r.status_code == 200, r.text
    stored = row(world, "messages", message)
    assert (stored.status, stored.body, stored.subject) == ("queued", "Hi Ada, more at https://acme.example/why", None)
    assert stored.next_attempt_at is not None  # due: the ticker dispatches it


def test_bulk_approval_refuses_a_written_text_the_brand_forbids(world: World) -> None:
    campaign_id, message, _ = awaiting(world)
    with world.db.begin() as conn:
        conn.execute(
            sa.text("UPDATE brands SET forbidden_claims = CAST(:c AS jsonb) WHERE id = :b"),
            {"c": '["short note"]', "b": world.brand_a},
        )
    r = world.a.post(f"/api/campaigns/{campaign_id}/review/approve", {"all": True})
    assert r.status_code == 200, r.text
    assert r.json()["approved"] == []
    [refused] = r.json()["refused"]
    assert refused["message_id"] == str(message)
    assert [(e["field"], e["reason"]) for e in refused["errors"]] == [("body", "forbidden_claim")]
    assert row(world, "messages", message).status == "awaiting_review"
    r = world.a.post(f"/api/campaigns/{campaign_id}/review/approve", {"message_ids": [str(uuid.uuid4())]})
    assert r.json()["refused"][0]["errors"][0]["reason"] == "not_found"


def test_roles_scopes_and_tenancy(world: World) -> None:
    campaign_id, message, _ = awaiting(world)
    viewer = world.a.as_role(Role.VIEWER)
    assert viewer.get(f"/api/campaigns/{campaign_id}/review").status_code == 200
    assert viewer.post(f"/api/messages/{message}/approve", {}).status_code == 403
    assert viewer.post(f"/api/messages/{message}/reject", {"reason": "no"}).status_code == 403
    assert viewer.post(f"/api/campaigns/{campaign_id}/review/approve", {"all": True}).status_code == 403

    # Another organization sees nothing of it and cannot decide on it.
    assert world.b.get(f"/api/campaigns/{campaign_id}/review").status_code == 404
    assert world.b.post(f"/api/messages/{message}/approve", {}).status_code == 404
    assert world.b.post(f"/api/messages/{message}/reject", {"reason": "no"}).status_code == 404

    def key(scopes: list[str]) -> dict[str, str]:
        return world.a.signer.headers(org_id=world.a.org_id, role=Role.MEMBER, scopes=scopes)

    client = world.a.client
    assert client.get(f"/api/campaigns/{campaign_id}/review", headers=key(["campaigns:read"])).status_code == 200
    assert client.post(f"/api/messages/{message}/approve", json={}, headers=key(["campaigns:read"])).status_code == 403
    assert client.post(f"/api/messages/{message}/approve", json={}, headers=key(["messages:read"])).status_code == 403
    assert row(world, "messages", message).status == "awaiting_review"
    r = client.post(f"/api/messages/{message}/approve", json={}, headers=key(["campaigns:write"]))
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["subject"], r.json()["body"]) == (
        "queued",
        WRITTEN["subject"],
        WRITTEN["body"],
    )
