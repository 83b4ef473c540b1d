"""Tenant isolation of the inbox: B's conversations are 404s for A and never in A's lists."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from tests.services.campaign.conversations.conftest import Seeder, World, seed_lead


def test_org_b_cannot_see_or_change_org_as_conversation(world: World) -> None:
    a = Seeder(world.db, world.a.org_id, world.brand_a)
    lead = seed_lead(world.db, world.a.org_id, phone="+15005550006")
    a.sent(lead, a.campaign(), datetime(2026, 11, 2, 9, tzinfo=UTC))
    a.inbound(lead, datetime(2026, 11, 2, 10, tzinfo=UTC), payload={"params": {"Body": "secret reply"}})
    member_b = Seeder(world.db, world.b.org_id, world.brand_b).member()

    assert [c["lead_id"] for c in world.a.get("/api/conversations").json()["items"]] == [str(lead)]
    assert world.b.get("/api/conversations").json()["items"] == []
    assert world.b.get("/api/conversations", params={"unread": "true"}).json()["items"] == []
    for r in (
        world.b.get(f"/api/conversations/{lead}"),
        world.b.post(f"/api/conversations/{lead}/read"),
        world.b.put(f"/api/conversations/{lead}/assignment", {"member_id": str(member_b)}),
    ):
        assert r.status_code == 404, r.text
        assert "secret reply" not in r.text
    with world.db.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM conversations")).scalar_one() == 0
    assert world.a.get("/api/conversations").json()["items"][0]["unread"] is True
