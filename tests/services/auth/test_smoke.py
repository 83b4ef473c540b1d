from litestar import Litestar
from litestar.testing import TestClient

from tests.services.auth.conftest import invite_and_join, login, signup


def test_smoke(client: TestClient[Litestar]) -> None:
    owner = signup(client)
    me = client.get("/api/auth/me", headers=owner.headers)
    assert me.status_code == 200, me.text
    again = login(client, owner.email)
    assert again.org_id == owner.org_id
    member = invite_and_join(client, owner)
    r = client.get("/api/auth/members", headers=member.headers)
    assert r.status_code == 200, r.text
    assert len(r.json()["items"]) == 2
    r = client.post("/api/auth/refresh", json={"refresh_token": member.refresh_token})
    assert r.status_code == 200, r.text
    r = client.post("/api/auth/api-keys", json={"name": "ci", "scopes": ["leads:read"]}, headers=owner.headers)
    assert r.status_code == 201, r.text
    key = r.json()["key"]
    r = client.post("/api/auth/api-keys/exchange", headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 200, r.text
    print(client.get("/api/auth/jwks.json").json())
