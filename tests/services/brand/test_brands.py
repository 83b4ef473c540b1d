"""Brands: create, read, list, update with If-Match, delete or archive."""

from __future__ import annotations

import uuid

import sqlalchemy as sa

from libs.db.models.brand import Brand
from libs.db.models.campaign import Campaign
from libs.db.session import system_session
from tests.services.brand.conftest import VALID_BRAND, Actor


def test_create_and_read_a_brand_with_every_field(alice: Actor) -> None:
    created = alice.create_brand()
    for key, value in VALID_BRAND.items():
        assert created[key] == value, key
    assert created["version"] == 1
    assert created["archived_at"] is None
    r = alice.get(f"/api/brands/{created['id']}")
    assert r.status_code == 200
    assert r.headers["etag"] == '"v1"'
    assert r.json() == created


def test_a_minimal_brand_gets_defaults(alice: Actor) -> None:
    r = alice.post("/api/brands", {"name": "  Bare  "})
    assert r.status_code == 201
    body = r.json()
    assert body["name"] == "Bare"
    assert body["timezone"] == "UTC"
    assert body["proof_points"] == []
    assert body["postal_address"] is None


def test_list_is_paginated_newest_first(alice: Actor) -> None:
    ids = [alice.create_brand(name=f"Brand {i}")["id"] for i in range(3)]
    first = alice.get("/api/brands", params={"limit": 2}).json()
    assert [b["id"] for b in first["items"]] == ids[::-1][:2]
    assert first["next_cursor"]
    second = alice.get("/api/brands", params={"limit": 2, "cursor": first["next_cursor"]}).json()
    assert [b["id"] for b in second["items"]] == [ids[0]]
    assert second["next_cursor"] is None


def test_list_rejects_a_bad_cursor_and_an_oversized_limit(alice: Actor) -> None:
    assert alice.get("/api/brands", params={"cursor": "!!not-ours"}).status_code == 422
    r = alice.get("/api/brands", params={"limit": 1_000_000})
    assert r.status_code == 422
    assert r.json()["code"] == "Invalid"


def test_update_needs_the_current_etag(alice: Actor) -> None:
    brand = alice.create_brand()
    path = f"/api/brands/{brand['id']}"
    r = alice.patch(path, {"tone_of_voice": "Formal"}, headers={"If-Match": '"v1"'})
    assert r.status_code == 200, r.text
    assert r.headers["etag"] == '"v2"'
    assert r.json()["tone_of_voice"] == "Formal"
    assert r.json()["version"] == 2
    assert r.json()["name"] == VALID_BRAND["name"]  # fields not sent are untouched

    missing = alice.patch(path, {"tone_of_voice": "Loud"})
    assert missing.status_code == 428
    assert missing.json()["code"] == "PreconditionRequired"

    for stale in ('"v1"', "*", 'W/"v2"', "v2", '"v999999999999999999999"'):
        r = alice.patch(path, {"tone_of_voice": "Loud"}, headers={"If-Match": stale})
        assert r.status_code == 412, stale
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["code"] == "VersionMismatch"
    assert alice.get(path).json()["tone_of_voice"] == "Formal"


def test_two_editors_one_wins_the_other_gets_412(alice: Actor) -> None:
    brand = alice.create_brand()
    path = f"/api/brands/{brand['id']}"
    etag = alice.get(path).headers["etag"]
    first = alice.patch(path, {"name": "First"}, headers={"If-Match": etag})
    second = alice.patch(path, {"name": "Second"}, headers={"If-Match": etag})
    assert first.status_code == 200
    assert second.status_code == 412
    assert second.json()["current_etag"] == '"v2"'
    assert alice.get(path).json()["name"] == "First"


def test_null_clears_optional_fields_but_not_required_ones(alice: Actor) -> None:
    brand = alice.create_brand()
    path = f"/api/brands/{brand['id']}"
    r = alice.patch(path, {"website": None, "proof_points": []}, headers={"If-Match": '"v1"'})
    assert r.status_code == 200
    assert r.json()["website"] is None
    assert r.json()["proof_points"] == []
    r = alice.patch(path, {"name": None, "timezone": None}, headers={"If-Match": '"v2"'})
    assert r.status_code == 422
    assert {e["field"] for e in r.json()["errors"]} == {"name", "timezone"}


def test_fields_the_client_may_not_set_are_refused(alice: Actor) -> None:
    r = alice.post("/api/brands", {"name": "X", "org_id": str(uuid.uuid4()), "version": 7, "archived_at": None})
    assert r.status_code == 422
    assert {e["field"] for e in r.json()["errors"]} >= {"org_id", "version", "archived_at"}


def test_delete_removes_an_unused_brand(alice: Actor) -> None:
    brand = alice.create_brand()
    r = alice.delete(f"/api/brands/{brand['id']}")
    assert r.status_code == 204
    assert alice.get(f"/api/brands/{brand['id']}").status_code == 404


def test_delete_with_a_stale_etag_is_refused(alice: Actor) -> None:
    brand = alice.create_brand()
    alice.patch(f"/api/brands/{brand['id']}", {"name": "Renamed"}, headers={"If-Match": '"v1"'})
    r = alice.delete(f"/api/brands/{brand['id']}", headers={"If-Match": '"v1"'})
    assert r.status_code == 412
    assert alice.get(f"/api/brands/{brand['id']}").status_code == 200


def test_delete_archives_a_brand_a_campaign_uses(alice: Actor, engine: sa.Engine) -> None:
    brand = alice.create_brand()
    brand_id = uuid.UUID(brand["id"])
    with system_session(engine) as s:
        s.add(Campaign(org_id=alice.org_id, brand_id=brand_id, name="Q4 outreach"))
    r = alice.delete(f"/api/brands/{brand_id}")
    assert r.status_code == 200, r.text
    assert r.json()["archived_at"] is not None
    assert r.json()["version"] == 2
    # Still readable (the campaign needs it), hidden from the default list, shown on request.
    assert alice.get(f"/api/brands/{brand_id}").status_code == 200
    assert alice.get("/api/brands").json()["items"] == []
    listed = alice.get("/api/brands", params={"include_archived": True}).json()["items"]
    assert [b["id"] for b in listed] == [str(brand_id)]
    # Deleting again is harmless and keeps it archived.
    assert alice.delete(f"/api/brands/{brand_id}").status_code == 200
    with system_session(engine) as s:
        assert s.get(Brand, brand_id) is not None
