"""Tenant isolation: another organization's ids are 404 everywhere, its rows never listed (T1, T2, T5)."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass

import sqlalchemy as sa
from litestar import Litestar
from litestar.testing import TestClient
from sqlmodel import select

from libs.db.models.auth import ApiKey, Invite, Membership
from libs.db.session import Database, make_engine
from tests.services.auth.conftest import Account, invite_and_join, signup, unique_email

# Every auth route that takes an id, with a body that would be valid for the caller's own row.
MATRIX: dict[tuple[str, str], dict[str, object] | None] = {
    ("GET", "/api/auth/members/{member_id}"): None,
    ("PATCH", "/api/auth/members/{member_id}"): {"role": "viewer"},
    ("DELETE", "/api/auth/members/{member_id}"): None,
    ("GET", "/api/auth/invites/{invite_id}"): None,
    ("DELETE", "/api/auth/invites/{invite_id}"): None,
    ("GET", "/api/auth/api-keys/{key_id}"): None,
    ("PATCH", "/api/auth/api-keys/{key_id}"): {"name": "stolen"},
    ("DELETE", "/api/auth/api-keys/{key_id}"): None,
}


@dataclass
class Tenant:
    owner: Account
    member: Account
    member_id: str
    invite_id: str
    invite_email: str
    key_id: str
    key_prefix: str


def _tenant(client: TestClient[Litestar], name: str) -> Tenant:
    owner = signup(client, org=name)
    member = invite_and_join(client, owner, role="member")
    items = client.get("/api/auth/members", headers=owner.headers).json()["items"]
    member_id = next(m["id"] for m in items if m["user_id"] == str(member.user_id))
    invite_email = unique_email(f"{name}-pending")
    invite = client.post("/api/auth/invites", json={"email": invite_email}, headers=owner.headers).json()
    key = client.post(
        "/api/auth/api-keys", json={"name": f"{name} key", "scopes": ["*"], "role": "owner"}, headers=owner.headers
    ).json()
    return Tenant(owner, member, member_id, invite["id"], invite_email, key["id"], key["prefix"])


def _ids(t: Tenant) -> dict[str, str]:
    return {"member_id": t.member_id, "invite_id": t.invite_id, "key_id": t.key_id}


def _snapshot(database_url: str, org_id: uuid.UUID) -> dict[str, list[str]]:
    engine = make_engine(database_url)
    with engine.connect() as conn:
        snap = {
            table: sorted(
                conn.execute(
                    sa.text(f"SELECT row_to_json(t)::text FROM {table} t WHERE org_id = :org"), {"org": org_id}
                ).scalars()
            )
            for table in ("memberships", "invites", "api_keys", "refresh_tokens")
        }
    engine.dispose()
    return snap


def test_every_id_route_is_in_the_matrix(app: Litestar) -> None:
    with_ids = {
        (method, route.path.replace(":uuid", ""))
        for route in app.routes
        for method in getattr(route, "methods", ())
        if "{" in route.path and method not in ("HEAD", "OPTIONS") and not route.path.startswith("/_schema")
    }
    assert with_ids == set(MATRIX)


def test_another_organizations_ids_are_404_and_its_rows_untouched(
    client: TestClient[Litestar], database_url: str
) -> None:
    a = _tenant(client, "alpha")
    b = _tenant(client, "bravo")
    before = _snapshot(database_url, b.owner.org_id)
    b_values = {b.owner.email, b.member.email, b.invite_email, b.key_prefix, str(b.owner.org_id)}
    for (method, template), body in MATRIX.items():
        path = template.format(**_ids(b))
        r = client.request(method, path, json=body, headers=a.owner.headers)
        assert r.status_code == 404, (method, path, r.text)
        assert not any(v in r.text for v in b_values), (method, path)
        own = client.get(template.format(**_ids(a)), headers=a.owner.headers)
        assert own.status_code == 200  # the ids are real: A reaches its own
    assert _snapshot(database_url, b.owner.org_id) == before
    assert client.get("/api/auth/members", headers=b.owner.headers).json()["items"][0]["role"] in ("member", "owner")


def test_lists_never_show_another_organizations_rows(client: TestClient[Litestar]) -> None:
    a = _tenant(client, "alpha")
    b = _tenant(client, "bravo")
    for path in ("/api/auth/members", "/api/auth/invites", "/api/auth/api-keys"):
        r = client.get(path, headers=a.owner.headers, params={"limit": 200})
        assert r.status_code == 200
        ids = {item["id"] for item in r.json()["items"]}
        assert not ids & set(_ids(b).values()), path
        assert b.owner.email not in r.text
        assert b.member.email not in r.text
    me = client.get("/api/auth/me", headers=a.owner.headers).json()
    assert [m["organization_id"] for m in me["memberships"]] == [str(a.owner.org_id)]


def test_no_way_into_another_organization(client: TestClient[Litestar]) -> None:
    a = _tenant(client, "alpha")
    b = _tenant(client, "bravo")
    r = client.post("/api/auth/switch", json={"organization_id": str(b.owner.org_id)}, headers=a.owner.headers)
    assert r.status_code == 404
    r = client.post(
        "/api/auth/login",
        json={"email": a.owner.email, "password": a.owner.password, "organization_id": str(b.owner.org_id)},
    )
    assert r.status_code == 403


def test_row_level_security_hides_other_tenants_without_any_filter(
    client: TestClient[Litestar], database_url: str
) -> None:
    a = _tenant(client, "alpha")
    _tenant(client, "bravo")

    async def visible() -> dict[str, set[uuid.UUID]]:
        db = Database.from_url(database_url)
        try:
            async with db.tenant(a.owner.org_id) as session:
                # Deliberately unfiltered: PostgreSQL row-level security must still hide B.
                return {
                    model.__tablename__: {row.org_id for row in (await session.exec(select(model))).all()}  # type: ignore[attr-defined]
                    for model in (Membership, Invite, ApiKey)
                }
        finally:
            await db.dispose()

    assert asyncio.run(visible()) == {
        "memberships": {a.owner.org_id},
        "invites": {a.owner.org_id},
        "api_keys": {a.owner.org_id},
    }
