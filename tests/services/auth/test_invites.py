"""Invites: single use, expiring, revocable; accepting creates or links the user."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import time_machine
from litestar import Litestar
from litestar.testing import TestClient

from tests.services.auth.conftest import PASSWORD, login, signup, unique_email


def _invite(client: TestClient[Litestar], headers: dict[str, str], email: str, role: str = "member") -> dict[str, str]:
    r = client.post("/api/auth/invites", json={"email": email, "role": role}, headers=headers)
    assert r.status_code == 201, r.text
    return dict(r.json())


def _accept(client: TestClient[Litestar], token: str, password: str = PASSWORD) -> tuple[int, dict[str, object]]:
    r = client.post("/api/auth/invites/accept", json={"token": token, "password": password, "name": "New"})
    return r.status_code, r.json()


def test_accepting_creates_the_user_and_the_membership(client: TestClient[Litestar]) -> None:
    owner = signup(client)
    email = unique_email("new")
    invite = _invite(client, owner.headers, email, role="viewer")
    assert invite["token"].startswith("twi_")
    assert invite["status"] == "pending"
    status, body = _accept(client, invite["token"])
    assert status == 200
    assert body["organization"] == {"id": str(owner.org_id), "name": "Acme"}  # type: ignore[comparison-overlap]
    assert body["role"] == "viewer"
    assert login(client, email).org_id == owner.org_id
    listed = client.get(f"/api/auth/invites/{invite['id']}", headers=owner.headers).json()
    assert listed["status"] == "accepted"
    assert "token" not in listed


def test_an_invite_works_once(client: TestClient[Litestar]) -> None:
    owner = signup(client)
    invite = _invite(client, owner.headers, unique_email())
    assert _accept(client, invite["token"])[0] == 200
    status, problem = _accept(client, invite["token"])
    assert status == 404
    assert problem["code"] == "InviteInvalid"


def test_an_invite_expires(client: TestClient[Litestar]) -> None:
    with time_machine.travel(datetime.now(UTC), tick=True) as traveller:
        owner = signup(client)
        invite = _invite(client, owner.headers, unique_email())
        traveller.shift(timedelta(days=7, minutes=1))
        assert _accept(client, invite["token"])[0] == 404
        r = client.post("/api/auth/refresh", json={"refresh_token": owner.refresh_token}).json()
        listed = client.get(
            f"/api/auth/invites/{invite['id']}", headers={"Authorization": f"Bearer {r['access_token']}"}
        )
        assert listed.json()["status"] == "expired"


def test_a_revoked_invite_no_longer_works(client: TestClient[Litestar]) -> None:
    owner = signup(client)
    invite = _invite(client, owner.headers, unique_email())
    assert client.delete(f"/api/auth/invites/{invite['id']}", headers=owner.headers).status_code == 204
    assert _accept(client, invite["token"])[0] == 404
    assert client.get(f"/api/auth/invites/{invite['id']}", headers=owner.headers).json()["status"] == "revoked"


def test_a_new_invite_replaces_the_pending_one(client: TestClient[Litestar]) -> None:
    owner = signup(client)
    email = unique_email()
    first = _invite(client, owner.headers, email)
    second = _invite(client, owner.headers, email)
    assert _accept(client, first["token"])[0] == 404
    assert _accept(client, second["token"])[0] == 200
    statuses = {i["id"]: i["status"] for i in client.get("/api/auth/invites", headers=owner.headers).json()["items"]}
    assert statuses == {first["id"]: "revoked", second["id"]: "accepted"}


def test_an_existing_user_is_linked_only_with_their_password(client: TestClient[Litestar]) -> None:
    inviter = signup(client, org="Inviter")
    existing = signup(client, org="Home")
    invite = _invite(client, inviter.headers, existing.email.upper(), role="admin")
    assert _accept(client, invite["token"], password="somebody else's guess")[0] == 401
    status, body = _accept(client, invite["token"])  # the failed attempt did not spend the invite
    assert status == 200
    assert body["user"]["id"] == str(existing.user_id)  # type: ignore[index]
    assert body["organization"]["id"] == str(inviter.org_id)  # type: ignore[index]
    assert login(client, existing.email).org_id == existing.org_id  # the old password still works, same account


def test_inviting_a_member_again_is_a_conflict(client: TestClient[Litestar]) -> None:
    owner = signup(client)
    r = client.post("/api/auth/invites", json={"email": owner.email, "role": "member"}, headers=owner.headers)
    assert r.status_code == 409


def test_a_new_user_needs_a_real_password(client: TestClient[Litestar]) -> None:
    owner = signup(client)
    invite = _invite(client, owner.headers, unique_email())
    status, problem = _accept(client, invite["token"], password="short")
    assert status == 422
    assert problem["errors"][0]["field"] == "password"  # type: ignore[index]
    assert _accept(client, invite["token"])[0] == 200


def test_malformed_tokens_are_refused_without_a_lookup(client: TestClient[Litestar]) -> None:
    for token in ("twi_short", "x" * 42, "twk_" + "A" * 38):
        assert _accept(client, token)[0] == 404
