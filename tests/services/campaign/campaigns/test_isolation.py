"""Tenant isolation: B's campaigns, steps, enrollments and messages are 404s for A; every route is guarded."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import sqlalchemy as sa
from litestar.testing import TestClient

from libs.app import OPENAPI_PATH
from libs.security import PUBLIC
from services.campaign.app import create_app
from services.campaign.settings import CampaignSettings
from tests.services.campaign.campaigns.conftest import World, seed_lead
from tests.support.tokens import TokenSigner


def _snapshot(world: World, org_id: uuid.UUID) -> dict[str, Any]:
    with world.db.connect() as conn:
        return {
            table: sorted(
                tuple(str(v) for v in row)
                for row in conn.execute(sa.text(f"SELECT * FROM {table} WHERE org_id = :o"), {"o": org_id})
            )
            for table in ("campaigns", "campaign_steps", "enrollments", "messages", "message_events")
        }


def test_every_id_of_b_is_a_404_for_a(world: World) -> None:
    a, b = world.a, world.b
    bc = b.create_campaign(world.brand_b, name="B secret campaign")
    bstep = b.add_step(bc["id"])
    blead = seed_lead(world.db, b.org_id)
    assert b.post(f"/api/campaigns/{bc['id']}/enrollments", {"lead_ids": [str(blead)]}).json()["enrolled"] == 1
    benr = b.get(f"/api/campaigns/{bc['id']}/enrollments").json()["items"][0]["id"]
    bmsg = uuid.uuid4()
    with world.db.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO messages (id, org_id, enrollment_id, step_id, campaign_id, lead_id, channel, status, "
                "created_at, updated_at) VALUES (:id, :o, :e, :s, :c, :l, 'email', 'sent', now(), now())"
            ),
            {"id": bmsg, "o": b.org_id, "e": benr, "s": bstep["id"], "c": bc["id"], "l": blead},
        )
        conn.execute(
            sa.text(
                "INSERT INTO message_events (id, org_id, message_id, lead_id, campaign_id, type, occurred_at) "
                "VALUES (gen_random_uuid(), :o, :m, :l, :c, 'sent', now())"
            ),
            {"o": b.org_id, "m": bmsg, "l": blead, "c": bc["id"]},
        )
    ac = a.create_campaign(world.brand_a)
    a.add_step(ac["id"])
    before = _snapshot(world, b.org_id)

    cb, sb, eb = f"/api/campaigns/{bc['id']}", f"/api/campaigns/{bc['id']}/steps", bstep["id"]
    step_body = {"channel": "email", "subject_template": "s", "body_template": "b"}
    calls: list[tuple[str, str, Any]] = [
        ("GET", cb, None),
        ("PATCH", cb, {"name": "pwned"}),
        ("DELETE", cb, None),
        ("POST", f"{cb}/clone", None),
        ("POST", f"{cb}/launch", None),
        ("POST", f"{cb}/pause", None),
        ("POST", f"{cb}/resume", None),
        ("POST", f"{cb}/archive", None),
        ("GET", f"{cb}/schedule", None),
        ("GET", f"{cb}/analytics", None),
        ("GET", sb, None),
        ("POST", sb, step_body),
        ("PUT", f"{sb}/order", {"step_ids": [eb]}),
        ("GET", f"{sb}/{eb}", None),
        ("PATCH", f"{sb}/{eb}", {"subject_template": "pwned"}),
        ("DELETE", f"{sb}/{eb}", None),
        ("GET", f"{cb}/enrollments", None),
        ("POST", f"{cb}/enrollments", {"lead_ids": [str(blead)]}),
        ("GET", f"{cb}/enrollments/{benr}", None),
        ("DELETE", f"{cb}/enrollments/{benr}", None),
        # B's child ids under A's own campaign
        ("GET", f"/api/campaigns/{ac['id']}/steps/{eb}", None),
        ("PATCH", f"/api/campaigns/{ac['id']}/steps/{eb}", {"subject_template": "pwned"}),
        ("DELETE", f"/api/campaigns/{ac['id']}/steps/{eb}", None),
        ("GET", f"/api/campaigns/{ac['id']}/enrollments/{benr}", None),
        ("DELETE", f"/api/campaigns/{ac['id']}/enrollments/{benr}", None),
        ("GET", f"/api/messages/{bmsg}", None),
        ("GET", f"/api/leads/{blead}/timeline", None),
        ("GET", f"/api/campaigns/{ac['id']}/schedule?lead_id={blead}", None),
    ]
    for method, path, body in calls:
        r = a.client.request(method, path, json=body, headers=a.headers())
        assert r.status_code == 404, (method, path, r.status_code, r.text)
        assert "B secret" not in r.text
    # Cross references in bodies: B's lead enrolled into A's campaign is skipped as not found.
    r = a.post(f"/api/campaigns/{ac['id']}/enrollments", {"lead_ids": [str(blead)]})
    assert r.json()["enrolled"] == 0
    assert r.json()["skipped"] == {"not_found": 1}
    # Lists and filters never show B's rows.
    assert [c["id"] for c in a.get("/api/campaigns").json()["items"]] == [ac["id"]]
    assert a.get("/api/messages").json()["items"] == []
    assert a.get("/api/messages", params={"campaign_id": bc["id"]}).json()["items"] == []
    assert a.get("/api/messages", params={"lead_id": str(blead)}).json()["items"] == []
    assert a.get("/api/campaigns", params={"brand_id": str(world.brand_b)}).json()["items"] == []
    assert _snapshot(world, b.org_id) == before
    assert b.get(f"/api/messages/{bmsg}").status_code == 200


def test_row_level_security_hides_b_even_without_a_filter(world: World) -> None:
    b = world.b
    b.create_campaign(world.brand_b)
    with world.db.connect() as conn, conn.begin():
        conn.exec_driver_sql("SET LOCAL ROLE tidewater_app")
        conn.execute(sa.text("SELECT set_config('app.org_id', :o, true)"), {"o": str(world.a.org_id)})
        assert conn.execute(sa.text("SELECT count(*) FROM campaigns")).scalar_one() == 0
    with world.db.connect() as conn, conn.begin():
        conn.exec_driver_sql("SET LOCAL ROLE tidewater_app")
        assert conn.execute(sa.text("SELECT count(*) FROM campaigns")).scalar_one() == 0


@pytest.fixture
def routes_app(campaign_settings: CampaignSettings, signer: TokenSigner) -> Any:
    return create_app(campaign_settings, verifier=signer.verifier())


def _framework(route: Any, handler: Any) -> bool:
    """Litestar's own routes: CORS preflight answers and the service's OpenAPI (public by design)."""
    return set(handler.http_methods) == {"OPTIONS"} or route.path.startswith(OPENAPI_PATH)


def test_every_route_is_public_or_guarded(routes_app: Any) -> None:
    unguarded = []
    count = 0
    for route in routes_app.routes:
        for handler in getattr(route, "route_handlers", []):
            if _framework(route, handler):
                continue
            count += 1
            public = handler.opt.get("exclude_from_auth") is True
            if not public and not handler.resolve_guards():
                unguarded.append(f"{sorted(getattr(handler, 'http_methods', []))} {route.path}")
            if public:
                assert set(PUBLIC.items()) <= set(handler.opt.items())
    assert count > 20
    assert unguarded == []


def test_every_guarded_route_refuses_a_missing_token(routes_app: Any) -> None:
    with TestClient(routes_app) as client:
        for route in routes_app.routes:
            for handler in getattr(route, "route_handlers", []):
                if handler.opt.get("exclude_from_auth") or _framework(route, handler):
                    continue
                for method in getattr(handler, "http_methods", []):
                    if method in ("HEAD", "OPTIONS"):
                        continue
                    r = client.request(method, _fill(route.path))
                    assert r.status_code == 401, (method, route.path, r.status_code)


def _fill(path: str) -> str:
    parts = []
    for seg in path.split("/"):
        if seg.startswith("{") and seg.endswith("}"):
            kind = seg[1:-1].split(":")[-1]
            parts.append({"uuid": str(uuid.uuid4()), "int": "1"}.get(kind, "x"))
        else:
            parts.append(seg)
    return "/".join(parts)
