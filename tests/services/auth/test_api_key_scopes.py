"""API-key scopes, end to end: keys made by the auth service, exchanged at the gateway, enforced by every service.

The gateway runs the real auth, brand and campaign services in this process; the services
verify tokens with the JWKS the auth service publishes, exactly as in production. Every
request with a key goes through the gateway's exchange (and its cache).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from litestar.testing import TestClient

from gateway.app import create_app as create_gateway
from gateway.proxy import GatewayProxy
from gateway.settings import GatewaySettings
from libs.scopes import READ_ONLY_AREAS, SCOPES, Area
from libs.security import KeySource, TokenVerifier
from libs.settings import Environment
from services.auth.app import create_app as create_auth
from services.auth.settings import AuthSettings
from services.brand.app import create_app as create_brand
from services.brand.settings import BrandSettings
from services.campaign.app import create_app as create_campaign
from services.campaign.settings import CampaignSettings
from tests.services.auth.conftest import PASSWORD, bearer, unique_email

BRAND = {"name": "Acme", "website": "https://acme.example", "postal_address": "1 Main St, Springfield"}


@dataclass
class System:
    """The gateway in front of the real services, and the owner of one organization."""

    client: TestClient[Any]
    gateway: GatewayProxy
    owner: dict[str, str]
    brand_id: str

    def key(self, scopes: list[str], role: str = "owner") -> str:
        """Create an API key (as the owner) and return its secret."""
        r = self.client.post(
            "/api/auth/api-keys", json={"name": "k", "scopes": scopes, "role": role}, headers=self.owner
        )
        assert r.status_code == 201, r.text
        return str(r.json()["key"])

    def invite(self, role: str) -> dict[str, str]:
        """Bring someone into the organization with ``role``; their session's headers."""
        r = self.client.post("/api/auth/invites", json={"email": unique_email(role), "role": role}, headers=self.owner)
        assert r.status_code == 201, r.text
        r = self.client.post("/api/auth/invites/accept", json={"token": r.json()["token"], "password": PASSWORD})
        assert r.status_code == 200, r.text
        return bearer(r.json()["access_token"])


@pytest.fixture
def system(database_url: str, redis_url: str, tmp_path: Path) -> Iterator[System]:
    common: dict[str, Any] = {
        "env": Environment.TEST,
        "database_url": database_url,
        "redis_url": redis_url,
        "database_pool_size": 4,
    }
    auth = create_auth(AuthSettings(**common))
    # The services fetch the auth service's JWKS as they do over the network.
    keys = KeySource(
        url="http://auth.internal/api/auth/jwks.json",
        client=httpx.AsyncClient(transport=httpx.ASGITransport(app=auth)),  # type: ignore[arg-type]
    )
    verifier = TokenVerifier(keys, issuer="tidewater", audience="tidewater-api")
    brand = create_brand(BrandSettings(**common, data_dir=tmp_path), verifier=verifier)
    campaign = create_campaign(
        CampaignSettings(**common, data_dir=tmp_path, webhooks_allow_private=True), verifier=verifier
    )
    gateway = create_gateway(
        GatewaySettings(env=Environment.TEST, database_url=database_url, redis_url=redis_url, readiness_timeout=2.0),
        upstream_apps={"auth": auth, "brand": brand, "campaign": campaign},
    )
    with TestClient[Any](gateway, base_url="http://edge.example") as client:  # type: ignore[type-var]
        r = client.post(
            "/api/auth/signup",
            json={"organization_name": "Acme", "name": "Ada", "email": unique_email("owner"), "password": PASSWORD},
        )
        assert r.status_code == 201, r.text
        owner = bearer(r.json()["access_token"])
        r = client.post("/api/brands", json=BRAND, headers=owner)
        assert r.status_code == 201, r.text
        yield System(client, gateway, owner, str(r.json()["id"]))


Call = Callable[[System, dict[str, str]], httpx.Response]


def _get(path: str) -> Call:
    return lambda s, h: s.client.get(path, headers=h)


def _post(path: str, body: Callable[[System], dict[str, Any]]) -> Call:
    return lambda s, h: s.client.post(path, json=body(s), headers=h)


READS: dict[Area, Call] = {
    Area.BRANDS: _get("/api/brands"),
    Area.CREDENTIALS: _get("/api/credentials"),
    Area.CAMPAIGNS: _get("/api/campaigns"),
    Area.LEADS: _get("/api/leads"),
    Area.SUPPRESSIONS: _get("/api/suppressions"),
    Area.MESSAGES: _get("/api/messages"),
    Area.WEBHOOKS: _get("/api/webhooks"),
    Area.MEMBERS: _get("/api/auth/members"),
    Area.API_KEYS: _get("/api/auth/api-keys"),
}
"""A representative read of each area."""

WRITES: dict[Area, Call] = {
    Area.BRANDS: _post("/api/brands", lambda s: {**BRAND, "name": f"Brand {uuid.uuid4().hex[:6]}"}),
    Area.CREDENTIALS: _post("/api/credentials", lambda s: {"provider": "openai", "api_key": "sk-" + "x" * 40}),
    Area.CAMPAIGNS: _post("/api/campaigns", lambda s: {"brand_id": s.brand_id, "name": "Spring"}),
    Area.LEADS: _post("/api/leads", lambda s: {"email": unique_email("lead")}),
    Area.SUPPRESSIONS: _post("/api/suppressions", lambda s: {"value": unique_email("gone")}),
    Area.WEBHOOKS: _post("/api/webhooks", lambda s: {"url": "http://127.0.0.1:9/hook", "event_types": ["sent"]}),
}
"""A representative write of each area that keys may write."""


def test_the_representative_routes_cover_every_area() -> None:
    assert set(READS) == set(Area)
    assert set(WRITES) == set(Area) - READ_ONLY_AREAS


def _refused(r: httpx.Response, scope: str) -> str | None:
    """Why ``r`` is not the 403 problem naming ``scope`` (None when it is)."""
    if r.status_code != 403 or not r.headers["content-type"].startswith("application/problem+json"):
        return f"{r.status_code} {r.text[:200]}"
    body = r.json()
    if body.get("code") != "MissingScope" or body.get("required_scope") != scope or scope not in body["detail"]:
        return f"403 without naming {scope}: {body}"
    return None


def test_each_scope_opens_its_own_area_and_nothing_else(system: System) -> None:
    wrong: list[str] = []
    for area in Area:
        holders = {area.read: system.key([area.read])}
        if area not in READ_ONLY_AREAS:
            holders[area.write] = system.key([area.write])
        for scope, key in holders.items():
            headers = bearer(key)
            for other, read in READS.items():
                r = read(system, headers)
                if other is area:  # write includes read
                    if r.status_code != 200:
                        wrong.append(f"{scope}: read {other} -> {r.status_code} {r.text[:200]}")
                elif (why := _refused(r, other.read)) is not None:
                    wrong.append(f"{scope}: read {other} -> {why}")
            for other, write in WRITES.items():
                r = write(system, headers)
                if other is area and scope == area.write:
                    if r.status_code != 201:
                        wrong.append(f"{scope}: write {other} -> {r.status_code} {r.text}")
                elif (why := _refused(r, other.write)) is not None:
                    wrong.append(f"{scope}: write {other} -> {why}")
    assert wrong == [], "\n".join(wrong)


def test_refused_writes_change_nothing(system: System) -> None:
    headers = bearer(system.key([Area.LEADS.read, Area.BRANDS.read]))
    r = system.client.post("/api/leads", json={"email": "someone@example.com"}, headers=headers)
    assert _refused(r, "leads:write") is None
    r = system.client.patch(f"/api/brands/{system.brand_id}", json={"name": "Renamed"}, headers=headers)
    assert _refused(r, "brands:write") is None
    assert system.client.get("/api/leads", headers=system.owner).json()["items"] == []
    assert system.client.get(f"/api/brands/{system.brand_id}", headers=headers).json()["name"] == BRAND["name"]


def test_the_star_scope_allows_everything_its_role_allows(system: System) -> None:
    headers = bearer(system.key(["*"], role="admin"))
    for area, read in READS.items():
        assert read(system, headers).status_code == 200, area
    for area, write in WRITES.items():
        r = write(system, headers)
        assert r.status_code == 201, (area, r.text)
    # ...and no more than people allow keys: managing people and keys stays with people.
    r = system.client.post("/api/auth/invites", json={"email": unique_email()}, headers=headers)
    assert (r.status_code, r.json()["code"]) == (403, "Forbidden")
    assert "sign in as a person" in r.json()["detail"]
    member_key = bearer(system.key(["*"], role="member"))
    r = system.client.post("/api/credentials", json={"provider": "twilio"}, headers=member_key)  # admins only
    assert (r.status_code, r.json()["code"]) == (403, "Forbidden"), r.text
    assert system.client.get("/api/auth/api-keys", headers=member_key).status_code == 403


def test_a_scope_never_lifts_the_role(system: System) -> None:
    viewer = bearer(system.key([Area.LEADS.write, Area.BRANDS.write], role="viewer"))
    assert system.client.get("/api/leads", headers=viewer).status_code == 200
    for r in (
        system.client.post("/api/leads", json={"email": unique_email("lead")}, headers=viewer),
        system.client.post("/api/brands", json=BRAND, headers=viewer),
    ):
        assert r.status_code == 403, r.text
        assert r.json()["code"] == "Forbidden"
        assert "member role" in r.json()["detail"]
    assert system.client.get("/api/leads", headers=system.owner).json()["items"] == []


def test_every_key_may_ask_who_it_is_and_no_key_may_act_as_a_person(system: System) -> None:
    headers = bearer(system.key([Area.MESSAGES.read]))
    me = system.client.get("/api/auth/me", headers=headers)
    assert me.status_code == 200, me.text
    assert me.json()["scopes"] == ["messages:read"]
    refused = [
        system.client.post("/api/auth/switch", json={"organization_id": str(uuid.uuid4())}, headers=headers),
        system.client.post(
            "/api/auth/password", json={"current_password": PASSWORD, "new_password": PASSWORD + "!"}, headers=headers
        ),
        system.client.post(
            "/api/auth/api-keys", json={"name": "x", "scopes": ["*"], "role": "viewer"}, headers=headers
        ),
        system.client.post("/api/auth/signing-keys/rotate", headers=headers),
    ]
    for r in refused:
        assert r.status_code == 403, r.text
        assert "sign in as a person" in r.json()["detail"], r.text


def test_people_are_not_limited_by_scopes(system: System) -> None:
    member = system.invite("member")
    assert system.client.get("/api/messages", headers=member).status_code == 200
    assert system.client.post("/api/leads", json={"email": unique_email("lead")}, headers=member).status_code == 201
    me = system.client.get("/api/auth/me", headers=member).json()
    assert (me["scopes"], me["api_key_id"]) == ([], None)


def test_the_exchanged_token_carries_exactly_the_keys_scopes_and_keys_never_share_tokens(system: System) -> None:
    narrow = system.key([Area.LEADS.read])
    wide = system.key(["*"])
    for _ in range(2):  # the second round is served from the gateway's cache
        assert system.client.get("/api/auth/me", headers=bearer(narrow)).json()["scopes"] == ["leads:read"]
        assert system.client.get("/api/auth/me", headers=bearer(wide)).json()["scopes"] == ["*"]
        assert _refused(system.client.get("/api/brands", headers=bearer(narrow)), "brands:read") is None
    assert system.gateway.api_keys.exchanges == 2  # one per key, then the cache
    # The cached token is the one the auth service signed: its scopes are the key's, as stored.
    cached = [token for token, _ in system.gateway.api_keys._cache.values()]
    assert sorted(sorted(jwt.decode(t, options={"verify_signature": False})["scopes"]) for t in cached) == [
        ["*"],
        ["leads:read"],
    ]
    # A key's scopes cannot change after creation: only its name may.
    keys = system.client.get("/api/auth/api-keys", headers=system.owner).json()["items"]
    narrow_id = next(k["id"] for k in keys if k["scopes"] == ["leads:read"])
    r = system.client.patch(
        f"/api/auth/api-keys/{narrow_id}", json={"name": "n", "scopes": ["*"]}, headers=system.owner
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "scopes"


def test_unknown_scopes_and_a_missing_role_are_refused_at_creation(system: System) -> None:
    r = system.client.post(
        "/api/auth/api-keys",
        json={"name": "x", "scopes": ["leads:read", "frobnicate:everything", "leads:*"], "role": "member"},
        headers=system.owner,
    )
    assert r.status_code == 422, r.text
    problem = r.json()
    assert [(e["field"], e["value"]) for e in problem["errors"]] == [
        ("scopes[1]", "frobnicate:everything"),
        ("scopes[2]", "leads:*"),
    ]
    assert "brands:read" in problem["errors"][0]["message"]
    assert problem["known_scopes"] == list(SCOPES)
    r = system.client.post("/api/auth/api-keys", json={"name": "x", "scopes": ["leads:read"]}, headers=system.owner)
    assert r.status_code == 422, r.text
    assert [e["field"] for e in r.json()["errors"]] == ["role"]
    assert system.client.get("/api/auth/api-keys", headers=system.owner).json()["items"] == []
