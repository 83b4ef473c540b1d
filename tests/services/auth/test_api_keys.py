"""API keys: shown once, stored as a hash, scoped, revocable, exchanged for access tokens (A12)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import jwt
import sqlalchemy as sa
import time_machine
from litestar import Litestar
from litestar.testing import TestClient

from libs.db.session import make_engine
from libs.scopes import SCOPES
from libs.security import KeySource, Role, TokenVerifier
from services.auth.opaque import SecretKind, hash_secret, is_well_formed, new_secret
from tests.services.auth.conftest import bearer, invite_and_join, signup


def _create(client: TestClient[Litestar], headers: dict[str, str], **body: object) -> dict[str, object]:
    r = client.post(
        "/api/auth/api-keys", json={"name": "ci", "scopes": ["leads:read"], "role": "member", **body}, headers=headers
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


def _exchange(client: TestClient[Litestar], key: str) -> tuple[int, dict[str, object]]:
    r = client.post("/api/auth/api-keys/exchange", headers=bearer(key))
    return r.status_code, r.json()


def test_key_format_has_a_prefix_and_a_checksum() -> None:
    key = new_secret(SecretKind.API_KEY)
    assert key.startswith("twk_")
    assert len(key) == 42
    assert is_well_formed(key, SecretKind.API_KEY)
    flipped = key[:10] + ("A" if key[10] != "A" else "B") + key[11:]
    assert not is_well_formed(flipped, SecretKind.API_KEY)
    assert not is_well_formed(key, SecretKind.REFRESH_TOKEN)


def test_the_secret_is_shown_once_and_lists_show_the_prefix(client: TestClient[Litestar]) -> None:
    owner = signup(client)
    created = _create(client, owner.headers, scopes=["leads:read", "campaigns:write"])
    key = str(created["key"])
    assert key.startswith(str(created["prefix"]))
    assert len(str(created["prefix"])) == 12
    listed = client.get("/api/auth/api-keys", headers=owner.headers)
    one = client.get(f"/api/auth/api-keys/{created['id']}", headers=owner.headers)
    for r in (listed, one):
        assert r.status_code == 200
        assert key not in r.text
        assert key[12:] not in r.text
    item = listed.json()["items"][0]
    assert {k: item[k] for k in ("name", "prefix", "scopes", "role", "last_used_at")} == {
        "name": "ci",
        "prefix": created["prefix"],
        "scopes": ["campaigns:write", "leads:read"],
        "role": "member",
        "last_used_at": None,
    }


def test_exchange_gives_a_scoped_short_lived_token(client: TestClient[Litestar]) -> None:
    owner = signup(client)
    created = _create(client, owner.headers, scopes=["leads:read"], role="admin")
    status, body = _exchange(client, str(created["key"]))
    assert status == 200
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 900
    token = str(body["access_token"])
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["scopes"] == ["leads:read"]
    assert claims["akid"] == created["id"]
    assert claims["op"] is False
    verifier = TokenVerifier(
        KeySource(jwks=client.get("/api/auth/jwks.json").json()), issuer="tidewater", audience="tidewater-api"
    )
    principal = asyncio.run(verifier.verify(token))
    assert principal.org_id == owner.org_id
    assert principal.role is Role.ADMIN
    assert principal.api_key_id == uuid.UUID(str(created["id"]))
    assert principal.scopes == frozenset({"leads:read"})
    me = client.get("/api/auth/me", headers=bearer(token)).json()
    assert me["api_key_id"] == created["id"]
    assert me["scopes"] == ["leads:read"]
    used = client.get(f"/api/auth/api-keys/{created['id']}", headers=owner.headers).json()
    assert used["last_used_at"] is not None


def test_revoked_expired_unknown_and_malformed_keys_are_refused(client: TestClient[Litestar]) -> None:
    with time_machine.travel(datetime.now(UTC), tick=True) as traveller:
        owner = signup(client)
        revoked = _create(client, owner.headers)
        expiring = _create(client, owner.headers, expires_at=(datetime.now(UTC) + timedelta(hours=1)).isoformat())
        assert _exchange(client, str(revoked["key"]))[0] == 200
        assert client.delete(f"/api/auth/api-keys/{revoked['id']}", headers=owner.headers).status_code == 204
        assert _exchange(client, str(expiring["key"]))[0] == 200
        candidates = {
            "revoked": str(revoked["key"]),
            "unknown": new_secret(SecretKind.API_KEY),
            "bad checksum": str(revoked["key"])[:-1] + ("0" if str(revoked["key"])[-1] != "0" else "1"),
            "not a key": "hello",
            "refresh token": owner.refresh_token,
        }
        for name, key in candidates.items():
            status, problem = _exchange(client, key)
            assert status == 401, name
            assert problem["code"] == "InvalidApiKey"
        assert client.post("/api/auth/api-keys/exchange").status_code == 401
        traveller.shift(timedelta(hours=1, seconds=1))
        assert _exchange(client, str(expiring["key"]))[0] == 401


def test_a_key_cannot_outrank_its_creator_or_manage_keys(client: TestClient[Litestar]) -> None:
    owner = signup(client)
    admin = invite_and_join(client, owner, role="admin")
    r = client.post("/api/auth/api-keys", json={"name": "x", "scopes": ["*"], "role": "owner"}, headers=admin.headers)
    assert r.status_code == 403
    created = _create(client, owner.headers, scopes=["*"], role="owner")
    token = str(_exchange(client, str(created["key"]))[1]["access_token"])
    # A key may not mint more keys, invite people or change roles: only people do that.
    assert (
        client.post(
            "/api/auth/api-keys", json={"name": "y", "scopes": ["*"], "role": "viewer"}, headers=bearer(token)
        ).status_code
        == 403
    )
    assert client.post("/api/auth/invites", json={"email": "a@example.com"}, headers=bearer(token)).status_code == 403


def test_the_token_role_follows_the_creator_down(client: TestClient[Litestar]) -> None:
    owner = signup(client)
    admin = invite_and_join(client, owner, role="admin")
    created = _create(client, admin.headers, role="admin")
    members = client.get("/api/auth/members", headers=owner.headers).json()["items"]
    admin_id = next(m["id"] for m in members if m["user_id"] == str(admin.user_id))
    client.patch(f"/api/auth/members/{admin_id}", json={"role": "viewer"}, headers=owner.headers)
    token = str(_exchange(client, str(created["key"]))[1]["access_token"])
    assert jwt.decode(token, options={"verify_signature": False})["role"] == "viewer"


def test_key_input_is_validated(client: TestClient[Litestar]) -> None:
    owner = signup(client)
    ok = {"name": "x", "scopes": ["leads:read"], "role": "member"}
    bad: list[tuple[dict[str, object], str]] = [
        ({**ok, "scopes": []}, "scopes"),
        ({**ok, "scopes": ["Not A Scope!"]}, "scopes[0]"),
        ({**ok, "scopes": ["leads:read", "frobnicate:everything"]}, "scopes[1]"),
        ({**ok, "scopes": ["leads:*"]}, "scopes[0]"),  # no per-area wildcard: * or the area's two scopes
        ({**ok, "scopes": ["members:write"]}, "scopes[0]"),  # people manage people
        ({**ok, "name": ""}, "name"),
        ({"name": "x", "scopes": ["leads:read"]}, "role"),
        ({**ok, "role": None}, "role"),
        ({**ok, "role": "superuser"}, "role"),
        ({**ok, "expires_at": "2000-01-01T00:00:00Z"}, "expires_at"),
        ({**ok, "expires_at": "2999-01-01T00:00:00"}, "expires_at"),  # naive
        ({**ok, "org_id": str(uuid.uuid4())}, "org_id"),
    ]
    for body, field in bad:
        r = client.post("/api/auth/api-keys", json=body, headers=owner.headers)
        assert r.status_code == 422, body
        assert r.headers["content-type"].startswith("application/problem+json")
        assert [e["field"] for e in r.json()["errors"]] == [field], (body, r.json())
    assert client.get("/api/auth/api-keys", headers=owner.headers).json()["items"] == []


def test_an_unknown_scope_is_named_with_its_value_and_the_known_scopes_listed(client: TestClient[Litestar]) -> None:
    owner = signup(client)
    body = {"name": "x", "scopes": ["frobnicate:everything", "leads:read", "Brands:Read"], "role": "member"}
    r = client.post("/api/auth/api-keys", json=body, headers=owner.headers)
    assert r.status_code == 422
    problem = r.json()
    assert problem["code"] == "Invalid"
    assert [(e["field"], e["value"]) for e in problem["errors"]] == [
        ("scopes[0]", "frobnicate:everything"),
        ("scopes[2]", "Brands:Read"),
    ]
    assert all(", ".join(SCOPES) in e["message"] for e in problem["errors"])
    assert problem["known_scopes"] == list(SCOPES)


def test_the_role_is_stored_as_given(client: TestClient[Litestar]) -> None:
    owner = signup(client)
    for role in ("viewer", "member", "admin", "owner"):
        assert _create(client, owner.headers, role=role)["role"] == role


def test_keys_can_be_renamed(client: TestClient[Litestar]) -> None:
    owner = signup(client)
    created = _create(client, owner.headers)
    r = client.patch(f"/api/auth/api-keys/{created['id']}", json={"name": "renamed"}, headers=owner.headers)
    assert r.status_code == 200
    assert r.json()["name"] == "renamed"


def test_only_the_hash_is_stored(client: TestClient[Litestar], database_url: str) -> None:
    owner = signup(client)
    created = _create(client, owner.headers)
    engine = make_engine(database_url)
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT * FROM api_keys")).mappings().one()
    engine.dispose()
    assert row["key_hash"] == hash_secret(str(created["key"]))
    assert all(str(created["key"]) not in str(v) for v in row.values())
