"""Revocation takes effect within seconds: the old access token (or API key) is refused everywhere.

The gateway runs the real auth and brand services in this process; the brand service verifies
tokens with the JWKS the auth service publishes and the revocation records in Redis, as in
production. Each test does the revoking action, then calls with the old credential until it is
refused, and prints how long that took (``pytest -s`` shows the figures).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar.testing import TestClient

from gateway.app import create_app as create_gateway
from gateway.proxy import GatewayProxy
from gateway.settings import GatewaySettings
from libs.security import KeySource, RevocationList, TokenVerifier
from libs.settings import Environment
from services.auth.app import create_app as create_auth
from services.auth.settings import AuthSettings
from services.brand.app import create_app as create_brand
from services.brand.settings import BrandSettings
from tests.services.auth.conftest import PASSWORD, bearer, unique_email

LIMIT = 5.0
"""Seconds within which a revoked credential must be refused."""


@dataclass
class Session:
    """One signed-in session: its tokens and ids."""

    access: str
    refresh: str
    user_id: str
    org_id: str

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.access)


@dataclass
class System:
    """The gateway in front of the real auth and brand services."""

    client: TestClient[Any]
    gateway: GatewayProxy
    brand: Any

    def direct(self, path: str, headers: dict[str, str]) -> httpx.Response:
        """Call the brand service itself, past the gateway (on the loop the services run on)."""

        async def fetch() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.brand)
            async with httpx.AsyncClient(transport=transport, base_url="http://brand.internal") as client:
                return await client.get(path, headers=headers)

        return self.client.blocking_portal.call(fetch)

    def session_from(self, r: httpx.Response) -> Session:
        assert r.status_code in (200, 201), r.text
        body = r.json()
        return Session(body["access_token"], body["refresh_token"], body["user"]["id"], body["organization"]["id"])

    def signup(self) -> tuple[Session, str]:
        email = unique_email("owner")
        r = self.client.post(
            "/api/auth/signup",
            json={"organization_name": "Acme", "name": "Ada", "email": email, "password": PASSWORD},
        )
        return self.session_from(r), email

    def login(self, email: str, password: str = PASSWORD) -> Session:
        return self.session_from(self.client.post("/api/auth/login", json={"email": email, "password": password}))

    def join(self, owner: Session, role: str) -> tuple[Session, str]:
        """Invite someone with ``role`` and accept; their session and membership id."""
        invite = {"email": unique_email(role), "role": role}
        r = self.client.post("/api/auth/invites", json=invite, headers=owner.headers)
        assert r.status_code == 201, r.text
        joined = self.session_from(
            self.client.post("/api/auth/invites/accept", json={"token": r.json()["token"], "password": PASSWORD})
        )
        r = self.client.get("/api/auth/members", headers=owner.headers, params={"limit": 100})
        member_id = next(m["id"] for m in r.json()["items"] if m["user_id"] == joined.user_id)
        return joined, str(member_id)


@pytest.fixture
def system(database_url: str, redis_url: str, tmp_path: Path) -> Iterator[System]:
    common: dict[str, Any] = {
        "env": Environment.TEST,
        "database_url": database_url,
        "redis_url": redis_url,
        "database_pool_size": 4,
    }
    auth = create_auth(AuthSettings(**common))
    keys = KeySource(
        url="http://auth.internal/api/auth/jwks.json",
        client=httpx.AsyncClient(transport=httpx.ASGITransport(app=auth)),  # type: ignore[arg-type]
    )
    # The brand service's verifier as libs.app wires it: JWKS plus the revocation records.
    verifier = TokenVerifier(keys, issuer="tidewater", audience="tidewater-api", revocations=RevocationList(redis_url))
    brand = create_brand(BrandSettings(**common, data_dir=tmp_path), verifier=verifier)
    gateway = create_gateway(
        GatewaySettings(env=Environment.TEST, database_url=database_url, redis_url=redis_url, readiness_timeout=2.0),
        upstream_apps={"auth": auth, "brand": brand},
    )
    with TestClient[Any](gateway, base_url="http://edge.example") as client:
        yield System(client, gateway, brand)


Call = Callable[[], httpx.Response]


def brands(system: System, headers: dict[str, str]) -> Call:
    """A read of the brand service, through the gateway."""
    return lambda: system.client.get("/api/brands", headers=headers)


def me(system: System, headers: dict[str, str]) -> Call:
    """A read of the auth service, through the gateway."""
    return lambda: system.client.get("/api/auth/me", headers=headers)


def refused_after(action: Call, *calls: Call) -> float:
    """Run ``action``; return the seconds from its start until every one of ``calls`` is refused (401)."""
    for call in calls:
        r = call()
        assert r.status_code == 200, f"the credential should work before the revocation: {r.status_code} {r.text}"
    started = time.perf_counter()
    r = action()
    assert r.status_code < 400, r.text
    pending = list(calls)
    while pending:
        last = pending[0]()
        if last.status_code == 401:
            assert last.headers["content-type"].startswith("application/problem+json")
            pending.pop(0)
            continue
        assert last.status_code == 200, last.text
        elapsed = time.perf_counter() - started
        assert elapsed < LIMIT, f"still accepted {elapsed:.2f} s after the revocation"
        time.sleep(0.05)
    return time.perf_counter() - started


def report(capsys: pytest.CaptureFixture[str], action: str, seconds: float) -> None:
    """Print one row of the measurements (shown with ``-s``)."""
    with capsys.disabled():
        print(f"\n  revocation  {action:<34} refused after {seconds * 1000:8.1f} ms (limit {LIMIT:.0f} s)")
    assert seconds < LIMIT


def test_logout_voids_the_session_access_token_at_once(system: System, capsys: pytest.CaptureFixture[str]) -> None:
    owner, email = system.signup()
    other = system.login(email)  # another session of the same person keeps working
    seconds = refused_after(
        lambda: system.client.post("/api/auth/logout", json={"refresh_token": owner.refresh}),
        brands(system, owner.headers),
        me(system, owner.headers),
    )
    report(capsys, "logout", seconds)
    assert brands(system, other.headers)().status_code == 200


def test_refresh_token_reuse_voids_every_access_token_of_the_family(
    system: System, capsys: pytest.CaptureFixture[str]
) -> None:
    first, _ = system.signup()
    r = system.client.post("/api/auth/refresh", json={"refresh_token": first.refresh})
    assert r.status_code == 200, r.text
    second = bearer(r.json()["access_token"])

    def reuse() -> httpx.Response:
        r = system.client.post("/api/auth/refresh", json={"refresh_token": first.refresh})
        assert r.status_code == 401, r.text
        return httpx.Response(204)

    seconds = refused_after(reuse, brands(system, first.headers), brands(system, second), me(system, second))
    report(capsys, "refresh-token reuse", seconds)


def test_password_change_voids_every_older_session_but_not_the_new_one(
    system: System, capsys: pytest.CaptureFixture[str]
) -> None:
    owner, email = system.signup()
    other = system.login(email)
    new: dict[str, str] = {}

    def change() -> httpx.Response:
        r = system.client.post(
            "/api/auth/password",
            json={"current_password": PASSWORD, "new_password": "another horse battery staple"},
            headers=owner.headers,
        )
        new.update(bearer(r.json()["access_token"]) if r.status_code == 200 else {})
        return r

    seconds = refused_after(change, brands(system, owner.headers), me(system, other.headers))
    report(capsys, "password change", seconds)
    assert brands(system, new)().status_code == 200
    assert me(system, new)().status_code == 200


def test_demotion_voids_the_old_role_and_a_refresh_brings_the_new_one(
    system: System, capsys: pytest.CaptureFixture[str]
) -> None:
    owner, _ = system.signup()
    admin, member_id = system.join(owner, "admin")
    assert system.client.get("/api/auth/invites", headers=admin.headers).status_code == 200  # admins only
    seconds = refused_after(
        lambda: system.client.patch(f"/api/auth/members/{member_id}", json={"role": "viewer"}, headers=owner.headers),
        brands(system, admin.headers),
        lambda: system.client.get("/api/auth/invites", headers=admin.headers),
    )
    report(capsys, "demotion (admin -> viewer)", seconds)
    r = system.client.post("/api/auth/refresh", json={"refresh_token": admin.refresh})
    assert r.status_code == 200, r.text
    viewer = bearer(r.json()["access_token"])
    assert brands(system, viewer)().status_code == 200
    assert system.client.get("/api/auth/invites", headers=viewer).status_code == 403
    assert brands(system, owner.headers)().status_code == 200  # nobody else is touched


def test_removal_from_the_organization_voids_the_member_tokens(
    system: System, capsys: pytest.CaptureFixture[str]
) -> None:
    owner, _ = system.signup()
    member, member_id = system.join(owner, "member")
    seconds = refused_after(
        lambda: system.client.delete(f"/api/auth/members/{member_id}", headers=owner.headers),
        brands(system, member.headers),
        me(system, member.headers),
    )
    report(capsys, "removal from the organization", seconds)
    assert system.client.post("/api/auth/refresh", json={"refresh_token": member.refresh}).status_code == 401


def _api_key(system: System, headers: dict[str, str], role: str = "admin") -> tuple[str, str]:
    r = system.client.post(
        "/api/auth/api-keys", json={"name": "ci", "scopes": ["brands:read"], "role": role}, headers=headers
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"]), str(r.json()["key"])


def test_a_revoked_api_key_is_refused_through_a_warm_exchange_cache(
    system: System, capsys: pytest.CaptureFixture[str]
) -> None:
    owner, _ = system.signup()
    key_id, key = _api_key(system, owner.headers)
    for _ in range(3):
        assert brands(system, bearer(key))().status_code == 200
    warm = system.gateway.api_keys.exchanges
    assert brands(system, bearer(key))().status_code == 200
    assert system.gateway.api_keys.exchanges == warm, "the exchange cache should answer"
    seconds = refused_after(
        lambda: system.client.delete(f"/api/auth/api-keys/{key_id}", headers=owner.headers),
        brands(system, bearer(key)),
    )
    report(capsys, "API key revoked (cache warm)", seconds)
    assert brands(system, bearer(key))().status_code == 401


def test_the_service_itself_refuses_revoked_tokens_past_the_gateway(system: System) -> None:
    """Not only the edge: a service reached directly refuses a revoked session or API-key token."""
    owner, _ = system.signup()
    key_id, key = _api_key(system, owner.headers)
    r = system.client.post("/api/auth/api-keys/exchange", headers=bearer(key))
    assert r.status_code == 200, r.text
    exchanged = bearer(r.json()["access_token"])
    assert system.direct("/api/brands", exchanged).status_code == 200
    assert system.direct("/api/brands", owner.headers).status_code == 200
    assert system.client.delete(f"/api/auth/api-keys/{key_id}", headers=owner.headers).status_code == 204
    assert system.client.post("/api/auth/logout", json={"refresh_token": owner.refresh}).status_code == 204
    for headers in (exchanged, owner.headers):
        r = system.direct("/api/brands", headers)
        assert r.status_code == 401, r.text
        assert r.json()["detail"] == "The access token has been revoked."


def test_an_api_key_outlives_its_creator_demotion_with_the_weaker_role(system: System) -> None:
    """A demotion voids the cached token of the creator's key; the gateway exchanges the key again."""
    owner, _ = system.signup()
    admin, member_id = system.join(owner, "admin")
    _, key = _api_key(system, admin.headers, role="admin")
    assert brands(system, bearer(key))().status_code == 200
    before = system.gateway.api_keys.exchanges
    r = system.client.patch(f"/api/auth/members/{member_id}", json={"role": "member"}, headers=owner.headers)
    assert r.status_code == 200, r.text
    r = system.client.get("/api/auth/me", headers=bearer(key))
    assert r.status_code == 200, r.text
    assert r.json()["role"] == "member"
    assert system.gateway.api_keys.exchanges == before + 1


def test_someone_else_logging_out_changes_nothing(system: System) -> None:
    owner, _ = system.signup()
    other, _ = system.signup()
    assert system.client.post("/api/auth/logout", json={"refresh_token": other.refresh}).status_code == 204
    assert brands(system, owner.headers)().status_code == 200
    assert uuid.UUID(me(system, owner.headers)().json()["user"]["id"]) == uuid.UUID(owner.user_id)
