"""Campaigns: create, read, list, update, clone, delete, and the status transitions."""

from __future__ import annotations

import uuid

import sqlalchemy as sa

from libs.security import Role
from tests.services.campaign.campaigns.conftest import World, seed_brand


def test_create_and_read_a_campaign_with_defaults(world: World) -> None:
    c = world.a.create_campaign(world.brand_a)
    assert c["status"] == "draft"
    assert c["send_window"] == {"weekdays": [0, 1, 2, 3, 4], "start": "09:00", "end": "17:00"}
    assert c["stop_rules"] == {"on_reply": True, "on_click": False, "on_unsubscribe": True, "on_bounce": False}
    assert c["ai"]["enabled"] is True
    got = world.a.get(f"/api/campaigns/{c['id']}")
    assert got.status_code == 200
    assert got.json() == c


def test_bad_input_is_a_422_naming_each_field(world: World) -> None:
    r = world.a.post(
        "/api/campaigns",
        {
            "brand_id": str(world.brand_a),
            "name": "",
            "timezone": "Mars/Base",
            "send_window": {"weekdays": [9], "start": "25:00", "end": "08:00"},
            "pacing_per_day": 0,
        },
    )
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/problem+json")
    fields = {e["field"] for e in r.json()["errors"]}
    assert {"name", "timezone", "pacing_per_day"} <= fields
    assert any(f.startswith("send_window") for f in fields)


def test_unknown_fields_are_refused(world: World) -> None:
    r = world.a.post(
        "/api/campaigns",
        {"brand_id": str(world.brand_a), "name": "x", "org_id": str(world.b.org_id), "status": "active"},
    )
    assert r.status_code == 422


def test_another_organizations_brand_is_refused(world: World) -> None:
    r = world.a.post("/api/campaigns", {"brand_id": str(world.brand_b), "name": "sneaky"})
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "brand_id"


def test_list_filters_and_paginates(world: World) -> None:
    other = seed_brand(world.db, world.a.org_id, name="Other")
    for i in range(5):
        world.a.create_campaign(world.brand_a, name=f"Alpha {i}")
    world.a.create_campaign(other, name="Beta")
    page1 = world.a.get("/api/campaigns", params={"limit": 4}).json()
    assert len(page1["items"]) == 4
    assert page1["next_cursor"]
    page2 = world.a.get("/api/campaigns", params={"limit": 4, "cursor": page1["next_cursor"]}).json()
    assert len(page2["items"]) == 2
    assert page2["next_cursor"] is None
    ids = [c["id"] for c in page1["items"] + page2["items"]]
    assert len(set(ids)) == 6
    assert [c["name"] for c in world.a.get("/api/campaigns", params={"brand_id": str(other)}).json()["items"]] == [
        "Beta"
    ]
    assert len(world.a.get("/api/campaigns", params={"name": "alpha"}).json()["items"]) == 5
    assert world.a.get("/api/campaigns", params={"name": "%"}).json()["items"] == []
    assert world.a.get("/api/campaigns", params={"limit": 1000}).status_code == 422


def test_update_and_clone_copy_steps(world: World) -> None:
    c = world.a.create_campaign(world.brand_a)
    world.a.add_step(c["id"])
    world.a.add_step(c["id"], channel="email", delay=2, business_days=True)
    r = world.a.patch(f"/api/campaigns/{c['id']}", {"name": "Renamed", "pacing_per_day": 50})
    assert r.status_code == 200
    assert r.json()["name"] == "Renamed"
    assert r.json()["pacing_per_day"] == 50
    clone = world.a.post(f"/api/campaigns/{c['id']}/clone", {"name": "Copy"})
    assert clone.status_code == 201, clone.text
    body = clone.json()
    assert body["status"] == "draft"
    assert body["cloned_from_id"] == c["id"]
    assert body["name"] == "Copy"
    steps = world.a.get(f"/api/campaigns/{body['id']}/steps").json()
    assert [(s["position"], s["delay"], s["business_days"]) for s in steps] == [(1, 0, False), (2, 2, True)]


def test_transitions_and_bad_transitions_are_409(world: World) -> None:
    c = world.a.create_campaign(world.brand_a)
    cid = c["id"]
    for action in ("pause", "resume"):
        r = world.a.post(f"/api/campaigns/{cid}/{action}")
        assert r.status_code == 409, action
        assert r.json()["code"] == "InvalidTransition"
    # Put it straight into active to exercise the running transitions without a brand service.
    with world.db.begin() as conn:
        conn.execute(sa.text("UPDATE campaigns SET status = 'active' WHERE id = :id"), {"id": cid})
    assert world.a.post(f"/api/campaigns/{cid}/launch").status_code == 409
    assert world.a.post(f"/api/campaigns/{cid}/archive").status_code == 409  # pause first
    assert world.a.post(f"/api/campaigns/{cid}/pause").json()["status"] == "paused"
    assert world.a.post(f"/api/campaigns/{cid}/pause").status_code == 409
    assert world.a.post(f"/api/campaigns/{cid}/resume").json()["status"] == "active"
    assert world.a.post(f"/api/campaigns/{cid}/pause").status_code == 200
    assert world.a.post(f"/api/campaigns/{cid}/archive").json()["status"] == "archived"
    for action in ("launch", "pause", "resume", "archive"):
        assert world.a.post(f"/api/campaigns/{cid}/{action}").status_code == 409
    assert world.a.patch(f"/api/campaigns/{cid}", {"name": "x"}).status_code == 409


def test_delete_only_drafts(world: World) -> None:
    c = world.a.create_campaign(world.brand_a)
    assert world.a.delete(f"/api/campaigns/{c['id']}").status_code == 204
    assert world.a.get(f"/api/campaigns/{c['id']}").status_code == 404
    c = world.a.create_campaign(world.brand_a)
    with world.db.begin() as conn:
        conn.execute(sa.text("UPDATE campaigns SET status = 'paused' WHERE id = :id"), {"id": c["id"]})
    assert world.a.delete(f"/api/campaigns/{c['id']}").status_code == 409


def test_brand_in_use_cannot_be_deleted(world: World) -> None:
    world.a.create_campaign(world.brand_a)
    with world.db.connect() as conn, conn.begin():
        try:
            conn.execute(sa.text("DELETE FROM brands WHERE id = :id"), {"id": world.brand_a})
        except sa.exc.IntegrityError:
            pass
        else:
            raise AssertionError("ON DELETE RESTRICT should have refused")


def test_viewers_cannot_write(world: World) -> None:
    c = world.a.create_campaign(world.brand_a)
    viewer = world.a.as_role(Role.VIEWER)
    assert viewer.get(f"/api/campaigns/{c['id']}").status_code == 200
    assert viewer.post("/api/campaigns", {"brand_id": str(world.brand_a), "name": "v"}).status_code == 403
    assert viewer.patch(f"/api/campaigns/{c['id']}", {"name": "v"}).status_code == 403
    assert viewer.delete(f"/api/campaigns/{c['id']}").status_code == 403
    assert viewer.post(f"/api/campaigns/{c['id']}/steps", {"channel": "email"}).status_code == 403
    assert viewer.post(f"/api/campaigns/{c['id']}/enrollments", {"lead_ids": [str(uuid.uuid4())]}).status_code == 403
    for action in ("launch", "pause", "resume", "archive", "clone"):
        assert viewer.post(f"/api/campaigns/{c['id']}/{action}").status_code == 403
    member = world.a.as_role(Role.MEMBER)
    assert member.post(f"/api/campaigns/{c['id']}/launch").status_code == 403  # launch needs an admin
