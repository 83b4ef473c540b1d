"""Launch asks the real brand service (uvicorn on loopback) for readiness, with the caller's token."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
import sqlalchemy as sa

from libs.settings import Environment
from services.brand.app import create_app as create_brand_app
from services.brand.settings import BrandSettings
from tests.services.campaign.campaigns.conftest import World, seed_brand, seed_lead, serve
from tests.support.tokens import TokenSigner


@pytest.fixture
def brand_url(database_url: str, redis_url: str, signer: TokenSigner) -> Iterator[str]:
    """The brand service, really running, on this test's database."""
    settings = BrandSettings(env=Environment.TEST, database_url=database_url, redis_url=redis_url)
    with serve(create_brand_app(settings, verifier=signer.verifier())) as url:
        yield url


def test_launch_schedules_waiting_leads_when_the_brand_is_ready(world: World) -> None:
    c = world.a.create_campaign(world.brand_a, pacing_per_day=1)
    world.a.add_step(c["id"], delay=2, delay_unit="hours")
    leads = [seed_lead(world.db, world.a.org_id) for _ in range(2)]
    world.a.post(f"/api/campaigns/{c['id']}/enrollments", {"lead_ids": [str(i) for i in leads]})
    r = world.a.post(f"/api/campaigns/{c['id']}/launch")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "active"
    assert r.json()["launched_at"] is not None
    with world.db.connect() as conn:
        now = conn.execute(sa.text("SELECT now()")).scalar_one()
        rows = conn.execute(
            sa.text("SELECT status, next_due_at FROM enrollments WHERE campaign_id = :c ORDER BY next_due_at"),
            {"c": c["id"]},
        ).all()
    assert [r.status for r in rows] == ["active", "active"]
    assert timedelta(minutes=119) < rows[0].next_due_at - now < timedelta(minutes=121)
    assert rows[1].next_due_at - rows[0].next_due_at == timedelta(days=1)  # pacing: one new lead a day


def test_launch_lists_what_the_brand_lacks_for_the_channels_used(world: World) -> None:
    bare = seed_brand(world.db, world.a.org_id, ready_email=False, name="Bare")
    c = world.a.create_campaign(bare)
    world.a.add_step(c["id"])
    world.a.add_step(c["id"], channel="sms", sms_template="Hi {{ first_name }}", delay=1)
    r = world.a.post(f"/api/campaigns/{c['id']}/launch")
    assert r.status_code == 422
    assert r.json()["code"] == "NotReadyToLaunch"
    fields = {e["field"] for e in r.json()["errors"]}
    assert fields == {"brand.email", "brand.sms"}
    messages = " ".join(e["message"] for e in r.json()["errors"])
    assert "postal address" in messages
    assert "SMS need opt-out wording" in messages  # (Twilio credentials are required in production only)
    assert world.a.get(f"/api/campaigns/{c['id']}").json()["status"] == "draft"


def test_launch_needs_steps_with_copy(world: World) -> None:
    c = world.a.create_campaign(world.brand_a)
    r = world.a.post(f"/api/campaigns/{c['id']}/launch")
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "steps"
    world.a.post(f"/api/campaigns/{c['id']}/steps", {"channel": "email", "subject_template": "only a subject"})
    r = world.a.post(f"/api/campaigns/{c['id']}/launch")
    assert r.status_code == 422
    assert [e["field"] for e in r.json()["errors"]] == ["steps[1].body_template"]


def test_brand_service_down_is_a_503_and_nothing_changes(world: World, client: object) -> None:
    c = world.a.create_campaign(world.brand_a)
    world.a.add_step(c["id"])
    world.a.client.app.state.brand_client.base_url = "http://127.0.0.1:9"  # type: ignore[attr-defined]
    r = world.a.post(f"/api/campaigns/{c['id']}/launch")
    assert r.status_code == 503
    assert r.headers["content-type"].startswith("application/problem+json")
    assert world.a.get(f"/api/campaigns/{c['id']}").json()["status"] == "draft"
