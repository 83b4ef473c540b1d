"""Refresh-token rotation, reuse detection and logout (A7)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
import time_machine
from litestar import Litestar
from litestar.testing import TestClient

from libs.db.session import make_engine
from services.auth.opaque import hash_secret
from tests.services.auth.conftest import bearer, login, signup


def _refresh(client: TestClient[Litestar], token: str) -> tuple[int, dict[str, object]]:
    r = client.post("/api/auth/refresh", json={"refresh_token": token})
    return r.status_code, r.json() if r.content else {}


def test_refresh_rotates_the_token(client: TestClient[Litestar]) -> None:
    owner = signup(client)
    status, body = _refresh(client, owner.refresh_token)
    assert status == 200
    assert body["refresh_token"] != owner.refresh_token
    assert str(body["refresh_token"]).startswith("twr_")
    me = client.get("/api/auth/me", headers=bearer(str(body["access_token"])))
    assert me.status_code == 200
    assert me.json()["user"]["id"] == str(owner.user_id)


def test_reusing_a_rotated_token_revokes_the_whole_family(client: TestClient[Litestar], capfd: object) -> None:
    owner = signup(client)
    other_session = login(client, owner.email)  # another family: untouched
    _, second = _refresh(client, owner.refresh_token)
    _, third = _refresh(client, str(second["refresh_token"]))
    status, problem = _refresh(client, owner.refresh_token)  # replay of the first token
    assert status == 401
    assert problem["code"] == "InvalidRefreshToken"
    assert _refresh(client, str(third["refresh_token"]))[0] == 401  # the live descendant died too
    assert _refresh(client, other_session.refresh_token)[0] == 200


def test_parallel_refreshes_with_one_token_let_exactly_one_through(client: TestClient[Litestar]) -> None:
    owner = signup(client)
    with ThreadPoolExecutor(max_workers=4) as pool:
        statuses = sorted(pool.map(lambda _: _refresh(client, owner.refresh_token)[0], range(4)))
    assert statuses == [200, 401, 401, 401]


def test_logout_revokes_the_session(client: TestClient[Litestar]) -> None:
    owner = signup(client)
    _, rotated = _refresh(client, owner.refresh_token)
    r = client.post("/api/auth/logout", json={"refresh_token": str(rotated["refresh_token"])})
    assert r.status_code == 204
    assert _refresh(client, str(rotated["refresh_token"]))[0] == 401
    # Logging out with an unknown token says nothing either way.
    assert client.post("/api/auth/logout", json={"refresh_token": "twr_nonsense"}).status_code == 204


def test_refresh_tokens_expire(client: TestClient[Litestar]) -> None:
    with time_machine.travel(datetime.now(UTC), tick=True) as traveller:
        owner = signup(client)
        traveller.shift(timedelta(days=31))
        assert _refresh(client, owner.refresh_token)[0] == 401


def test_access_and_refresh_tokens_are_not_interchangeable(client: TestClient[Litestar]) -> None:
    owner = signup(client)
    assert _refresh(client, owner.access_token)[0] in (401, 422)
    assert client.get("/api/auth/me", headers=bearer(owner.refresh_token)).status_code == 401


def test_refresh_tokens_are_stored_hashed(client: TestClient[Litestar], database_url: str) -> None:
    owner = signup(client)
    engine = make_engine(database_url)
    with engine.connect() as conn:
        hashes = conn.execute(sa.text("SELECT token_hash FROM refresh_tokens")).scalars().all()
    engine.dispose()
    assert hashes == [hash_secret(owner.refresh_token)]


def test_a_removed_member_cannot_refresh(client: TestClient[Litestar]) -> None:
    from tests.services.auth.conftest import invite_and_join

    owner = signup(client)
    member = invite_and_join(client, owner)
    members = client.get("/api/auth/members", headers=owner.headers).json()["items"]
    member_id = next(m["id"] for m in members if m["user_id"] == str(member.user_id))
    assert client.delete(f"/api/auth/members/{member_id}", headers=owner.headers).status_code == 204
    assert _refresh(client, member.refresh_token)[0] == 401
