"""Members and roles: an organization always keeps an owner; viewers cannot write (A15)."""

from __future__ import annotations

from litestar import Litestar
from litestar.testing import TestClient

from tests.services.auth.conftest import Account, bearer, invite_and_join, signup, unique_email


def _member_id(client: TestClient[Litestar], viewer: Account, who: Account) -> str:
    items = client.get("/api/auth/members", headers=viewer.headers).json()["items"]
    return str(next(m["id"] for m in items if m["user_id"] == str(who.user_id)))


def test_members_are_listed_with_their_roles(client: TestClient[Litestar]) -> None:
    owner = signup(client)
    member = invite_and_join(client, owner, role="member")
    viewer = invite_and_join(client, owner, role="viewer")
    r = client.get("/api/auth/members", headers=viewer.headers)
    assert r.status_code == 200
    roles = {m["email"]: m["role"] for m in r.json()["items"]}
    assert roles == {owner.email: "owner", member.email: "member", viewer.email: "viewer"}
    page = client.get("/api/auth/members", params={"limit": 2}, headers=owner.headers).json()
    rest = client.get("/api/auth/members", params={"cursor": page["next_cursor"]}, headers=owner.headers).json()
    assert len(page["items"]) == 2
    assert len(rest["items"]) == 1
    assert rest["next_cursor"] is None
    one = client.get(f"/api/auth/members/{_member_id(client, owner, member)}", headers=viewer.headers)
    assert one.json()["email"] == member.email


def test_roles_change_and_take_effect_on_the_next_token(client: TestClient[Litestar]) -> None:
    owner = signup(client)
    member = invite_and_join(client, owner)
    mid = _member_id(client, owner, member)
    r = client.patch(f"/api/auth/members/{mid}", json={"role": "admin"}, headers=owner.headers)
    assert r.status_code == 200
    assert r.json()["role"] == "admin"
    refreshed = client.post("/api/auth/refresh", json={"refresh_token": member.refresh_token}).json()
    assert client.get("/api/auth/me", headers=bearer(refreshed["access_token"])).json()["role"] == "admin"


def test_the_last_owner_cannot_be_demoted_or_leave(client: TestClient[Litestar]) -> None:
    owner = signup(client)
    own_id = _member_id(client, owner, owner)
    r = client.patch(f"/api/auth/members/{own_id}", json={"role": "admin"}, headers=owner.headers)
    assert r.status_code == 409
    assert r.json()["code"] == "LastOwner"
    r = client.delete(f"/api/auth/members/{own_id}", headers=owner.headers)
    assert r.status_code == 409
    # With a second owner, the first may step down.
    second = invite_and_join(client, owner, role="owner")
    assert client.patch(f"/api/auth/members/{own_id}", json={"role": "admin"}, headers=owner.headers).status_code == 200
    second_id = _member_id(client, second, second)
    assert client.delete(f"/api/auth/members/{second_id}", headers=second.headers).status_code == 409


def test_admins_cannot_touch_the_owner_role(client: TestClient[Litestar]) -> None:
    owner = signup(client)
    admin = invite_and_join(client, owner, role="admin")
    member = invite_and_join(client, owner, role="member")
    assert (
        client.patch(
            f"/api/auth/members/{_member_id(client, owner, member)}", json={"role": "owner"}, headers=admin.headers
        ).status_code
        == 403
    )
    assert (
        client.patch(
            f"/api/auth/members/{_member_id(client, owner, owner)}", json={"role": "member"}, headers=admin.headers
        ).status_code
        == 403
    )
    assert (
        client.delete(f"/api/auth/members/{_member_id(client, owner, owner)}", headers=admin.headers).status_code == 403
    )
    r = client.post("/api/auth/invites", json={"email": unique_email(), "role": "owner"}, headers=admin.headers)
    assert r.status_code == 403
    assert (
        client.patch(
            f"/api/auth/members/{_member_id(client, owner, member)}", json={"role": "viewer"}, headers=admin.headers
        ).status_code
        == 200
    )


def test_viewers_and_members_cannot_write(client: TestClient[Litestar]) -> None:
    owner = signup(client)
    for role in ("viewer", "member"):
        person = invite_and_join(client, owner, role=role)
        target = _member_id(client, owner, owner)
        attempts = [
            client.post("/api/auth/invites", json={"email": unique_email(), "role": "viewer"}, headers=person.headers),
            client.get("/api/auth/invites", headers=person.headers),
            client.post(
                "/api/auth/api-keys",
                json={"name": "k", "scopes": ["leads:read"], "role": "viewer"},
                headers=person.headers,
            ),
            client.get("/api/auth/api-keys", headers=person.headers),
            client.patch(f"/api/auth/members/{target}", json={"role": "viewer"}, headers=person.headers),
            client.delete(f"/api/auth/members/{target}", headers=person.headers),
        ]
        assert [a.status_code for a in attempts] == [403] * len(attempts), role
        assert all(a.json()["code"] == "Forbidden" for a in attempts)


def test_anyone_may_leave_and_loses_access(client: TestClient[Litestar]) -> None:
    owner = signup(client)
    viewer = invite_and_join(client, owner, role="viewer")
    assert (
        client.delete(f"/api/auth/members/{_member_id(client, owner, viewer)}", headers=viewer.headers).status_code
        == 204
    )
    assert {m["email"] for m in client.get("/api/auth/members", headers=owner.headers).json()["items"]} == {owner.email}
    assert client.post("/api/auth/login", json={"email": viewer.email, "password": viewer.password}).status_code == 403


def test_removing_a_member_revokes_the_api_keys_they_created(client: TestClient[Litestar]) -> None:
    owner = signup(client)
    admin = invite_and_join(client, owner, role="admin")
    key = client.post(
        "/api/auth/api-keys", json={"name": "admin's", "scopes": ["*"], "role": "admin"}, headers=admin.headers
    ).json()
    assert client.post("/api/auth/api-keys/exchange", headers=bearer(key["key"])).status_code == 200
    assert (
        client.delete(f"/api/auth/members/{_member_id(client, owner, admin)}", headers=owner.headers).status_code == 204
    )
    assert client.post("/api/auth/api-keys/exchange", headers=bearer(key["key"])).status_code == 401
    listed = client.get(f"/api/auth/api-keys/{key['id']}", headers=owner.headers).json()
    assert listed["revoked_at"] is not None
