"""Tenant isolation: organization B's brands, senders and credentials do not exist for A."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa

from libs.db.session import system_session
from libs.security import Role
from tests.services.brand.conftest import Actor
from tests.services.brand.test_credentials import create_twilio


def _snapshot(engine: sa.Engine) -> dict[str, list[Any]]:
    with system_session(engine) as s:
        return {
            table: [tuple(r) for r in s.connection().execute(sa.text(f"SELECT * FROM {table} ORDER BY id"))]
            for table in ("brands", "senders", "provider_credentials")
        }


def test_every_id_of_b_is_a_404_for_a(alice: Actor, bob: Actor, engine: sa.Engine) -> None:
    b_brand = bob.create_brand(name="Bob's brand")
    b_sender = bob.create_sender(b_brand["id"], kind="sms", phone_number="+14155552671")
    b_cred = create_twilio(bob)
    a_brand = alice.create_brand(name="Alice's brand")
    before = _snapshot(engine)

    brand = f"/api/brands/{b_brand['id']}"
    sender = f"{brand}/senders/{b_sender['id']}"
    # B's sender reached through A's own brand id must not resolve either.
    sender_via_a = f"/api/brands/{a_brand['id']}/senders/{b_sender['id']}"
    cred = f"/api/credentials/{b_cred['id']}"
    if_match = {"If-Match": '"v1"'}
    attempts = [
        alice.get(brand),
        alice.patch(brand, {"name": "pwned"}, headers=if_match),
        alice.delete(brand),
        alice.get(f"{brand}/readiness"),
        alice.get(f"{brand}/senders"),
        alice.post(f"{brand}/senders", {"kind": "sms", "phone_number": "+14155552671"}),
        alice.get(sender),
        alice.patch(sender, {"label": "pwned"}, headers=if_match),
        alice.delete(sender),
        alice.post(f"{sender}/verify"),
        alice.get(sender_via_a),
        alice.patch(sender_via_a, {"label": "pwned"}, headers=if_match),
        alice.delete(sender_via_a),
        alice.get(cred),
        alice.patch(cred, {"model": None}, headers=if_match),
        alice.delete(cred),
    ]
    for r in attempts:
        assert r.status_code == 404, (r.request.method, r.request.url, r.status_code, r.text)
        assert "Bob" not in r.text
        assert b_brand["id"] not in r.text.replace(str(r.request.url.path), "")
    assert _snapshot(engine) == before


def test_lists_never_show_another_organizations_rows(alice: Actor, bob: Actor) -> None:
    bob.create_brand(name="Bob's brand")
    create_twilio(bob)
    mine = alice.create_brand(name="Alice's brand")
    assert [b["id"] for b in alice.get("/api/brands", params={"include_archived": True}).json()["items"]] == [
        mine["id"]
    ]
    assert alice.get("/api/credentials").json()["items"] == []
    assert [b["name"] for b in bob.get("/api/brands").json()["items"]] == ["Bob's brand"]


def test_random_ids_are_404(alice: Actor) -> None:
    assert alice.get(f"/api/brands/{uuid.uuid4()}").status_code == 404
    assert alice.get(f"/api/credentials/{uuid.uuid4()}").status_code == 404


def test_viewers_can_read_but_not_write(alice: Actor) -> None:
    brand = alice.create_brand()
    sender = alice.create_sender(brand["id"], kind="sms", phone_number="+14155552671")
    cred = create_twilio(alice)
    viewer = alice.as_role(Role.VIEWER)
    brand_path = f"/api/brands/{brand['id']}"
    sender_path = f"{brand_path}/senders/{sender['id']}"
    if_match = {"If-Match": '"v1"'}
    assert viewer.get(brand_path).status_code == 200
    assert viewer.get(f"{brand_path}/readiness").status_code == 200
    assert viewer.get(sender_path).status_code == 200
    assert viewer.get("/api/credentials").status_code == 200
    writes = [
        viewer.post("/api/brands", {"name": "Nope"}),
        viewer.patch(brand_path, {"name": "Nope"}, headers=if_match),
        viewer.delete(brand_path),
        viewer.post(f"{brand_path}/senders", {"kind": "sms", "phone_number": "+14155552671"}),
        viewer.patch(sender_path, {"label": "Nope"}, headers=if_match),
        viewer.delete(sender_path),
        viewer.post(f"{sender_path}/verify"),
        viewer.post("/api/credentials", {"provider": "openai", "api_key": "sk-" + "x" * 40}),
        viewer.patch(f"/api/credentials/{cred['id']}", {"model": "gpt-4o"}, headers=if_match),
        viewer.delete(f"/api/credentials/{cred['id']}"),
    ]
    for r in writes:
        assert r.status_code == 403, (r.request.method, r.request.url, r.text)
        assert r.json()["code"] == "Forbidden"
    assert alice.get(brand_path).json()["version"] == 1


def test_members_manage_brands_but_only_admins_manage_credentials(alice: Actor) -> None:
    member = alice.as_role(Role.MEMBER)
    assert member.post("/api/brands", {"name": "Member's"}).status_code == 201
    r = member.post("/api/credentials", {"provider": "openai", "api_key": "sk-" + "x" * 40})
    assert r.status_code == 403
    assert (
        alice.as_role(Role.ADMIN)
        .post("/api/credentials", {"provider": "openai", "api_key": "sk-" + "x" * 40})
        .status_code
        == 201
    )


def test_no_token_is_a_401(alice: Actor) -> None:
    assert alice.client.get("/api/brands").status_code == 401
    assert alice.client.get("/api/credentials").status_code == 401


def test_every_api_route_is_guarded(client: Any) -> None:
    checked = 0
    for route in client.app.routes:
        if not route.path.startswith("/api/"):
            continue
        for handler in getattr(route, "route_handlers", []):
            guards = [g for layer in handler.ownership_layers for g in (layer.guards or [])]
            assert guards, f"{route.path} has no guard"
            assert not handler.opt.get("exclude_from_auth"), route.path
            checked += 1
    assert checked >= 16
