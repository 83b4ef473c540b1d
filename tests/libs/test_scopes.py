"""API-key scopes: the closed set, what each grants, and their enforcement on every route of a service."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from litestar import Controller, delete, get, head, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.testing import TestClient
from structlog.testing import capture_logs

from libs.app import create_service_app
from libs.scopes import (
    ALL,
    ANY_TOKEN,
    KNOWN_SCOPES,
    PEOPLE_ONLY,
    READ_ONLY_AREAS,
    SCOPES,
    Area,
    Requirement,
    grants,
    required_scope,
    scope_area,
    unknown_scopes,
)
from libs.security import Principal, Role, requires
from libs.settings import CommonSettings
from tests.support.tokens import TokenSigner


def test_the_closed_set_is_read_and_write_per_area_and_star() -> None:
    assert SCOPES[0] == ALL == "*"
    for area in Area:
        assert area.read in KNOWN_SCOPES
        assert (area.write in KNOWN_SCOPES) is (area not in READ_ONLY_AREAS)
    assert len(SCOPES) == len(set(SCOPES)) == 1 + 2 * len(Area) - len(READ_ONLY_AREAS)
    assert {"brands:write", "leads:write", "suppressions:write", "messages:read", "api_keys:read"} <= KNOWN_SCOPES
    assert not {"messages:write", "members:write", "api_keys:write", "leads:*", "leads", ""} & KNOWN_SCOPES


def test_write_includes_read_of_its_area_only_and_star_holds_everything() -> None:
    assert grants(["leads:write"], "leads:read")
    assert grants(["leads:write"], "leads:write")
    assert not grants(["leads:read"], "leads:write")
    assert not grants(["leads:write"], "suppressions:read")
    assert not grants(["leads:write"], "brands:read")
    assert all(grants(["*"], scope) for scope in SCOPES)
    assert not grants([], "leads:read")


def test_stored_scopes_outside_the_closed_set_grant_nothing() -> None:
    # Keys created before the set was closed may hold anything; only known scopes count.
    assert not grants(["leads:*"], "leads:read")
    assert not grants(["frobnicate:everything"], "leads:read")
    assert not grants(["messages:write"], "messages:read")


def test_unknown_scopes_are_found_with_their_positions() -> None:
    assert unknown_scopes(["leads:read", "frobnicate:everything", "*", "Leads:Read"]) == [
        (1, "frobnicate:everything"),
        (3, "Leads:Read"),
    ]
    assert unknown_scopes(SCOPES) == []


def test_the_method_picks_read_or_write_and_undeclared_routes_need_a_person() -> None:
    opt = scope_area(Area.CAMPAIGNS)
    assert [required_scope(opt, m) for m in ("GET", "HEAD", "OPTIONS", "get")] == [
        "campaigns:read"
    ] * 4  # OPTIONS only asks what is allowed
    assert [required_scope(opt, m) for m in ("POST", "PUT", "PATCH", "DELETE")] == ["campaigns:write"] * 4
    assert required_scope(ANY_TOKEN, "POST") is Requirement.NONE
    assert required_scope(PEOPLE_ONLY, "GET") is Requirement.PERSON
    assert required_scope({}, "GET") is Requirement.PERSON
    assert required_scope({"scope_area": "leads"}, "GET") is Requirement.PERSON  # a bare string is no Area


class Leads(Controller):
    path = "/api/leads"
    guards = [requires(Role.VIEWER)]
    opt = scope_area(Area.LEADS)

    @get("/", sync_to_thread=False)
    def list_leads(self) -> list[str]:
        return []

    @head("/", sync_to_thread=False)
    def count_leads(self) -> None:
        return None

    @post("/", guards=[requires(Role.MEMBER)], sync_to_thread=False)
    def add_lead(self) -> dict[str, str]:
        return {"added": "yes"}

    @patch("/{lead_id:uuid}", guards=[requires(Role.MEMBER)], sync_to_thread=False)
    def change_lead(self, lead_id: FromPath[uuid.UUID]) -> dict[str, str]:
        return {"changed": str(lead_id)}

    @delete("/{lead_id:uuid}", guards=[requires(Role.ADMIN)], sync_to_thread=False)
    def erase_lead(self, lead_id: FromPath[uuid.UUID]) -> None:
        return None

    @get("/stats", opt=scope_area(Area.CAMPAIGNS), sync_to_thread=False)
    def lead_stats(self) -> dict[str, int]:
        return {"leads": 0}


@get("/api/whoami", guards=[requires(Role.VIEWER)], opt=ANY_TOKEN, sync_to_thread=False)
def whoami(principal: NamedDependency[Principal]) -> dict[str, Any]:
    return {"scopes": sorted(principal.scopes)}


@post("/api/password", guards=[requires(Role.VIEWER)], opt=PEOPLE_ONLY, sync_to_thread=False)
def password() -> dict[str, str]:
    return {"changed": "yes"}


@get("/api/forgotten", guards=[requires(Role.VIEWER)], sync_to_thread=False)
def forgotten() -> dict[str, str]:
    return {"area": "none declared"}


@pytest.fixture
def client(settings: CommonSettings, signer: TokenSigner) -> Iterator[TestClient[Any]]:
    app = create_service_app(
        name="scopes",
        title="scopes",
        settings=settings,
        route_handlers=[Leads, whoami, password, forgotten],
        verifier=signer.verifier(),
    )
    with TestClient(app) as c:
        yield c


def _key(signer: TokenSigner, *scopes: str, role: Role = Role.OWNER) -> dict[str, str]:
    """Headers of a token shaped like an exchanged API key's."""
    return signer.headers(org_id=uuid.uuid4(), role=role, scopes=list(scopes), akid=str(uuid.uuid4()))


def test_a_scoped_token_needs_the_routes_scope(client: TestClient[Any], signer: TokenSigner) -> None:
    some = f"/api/leads/{uuid.uuid4()}"
    reader, writer = _key(signer, "leads:read"), _key(signer, "leads:write")
    assert client.get("/api/leads", headers=reader).status_code == 200
    assert client.head("/api/leads", headers=reader).status_code == 200
    for r in (
        client.post("/api/leads", headers=reader),
        client.patch(some, headers=reader),
        client.delete(some, headers=reader),
    ):
        assert r.status_code == 403
        assert r.json()["code"] == "MissingScope"
        assert r.json()["required_scope"] == "leads:write"
        assert r.json()["detail"] == "This action needs the leads:write scope."
    assert client.get("/api/leads", headers=writer).status_code == 200
    assert client.post("/api/leads", headers=writer).status_code == 201
    assert client.patch(some, headers=writer).status_code == 200
    assert client.delete(some, headers=writer).status_code == 204
    # A handler may name another area than its controller's.
    assert client.get("/api/leads/stats", headers=writer).json()["required_scope"] == "campaigns:read"
    assert client.get("/api/leads/stats", headers=_key(signer, "campaigns:read")).status_code == 200


def test_other_areas_and_unknown_scopes_open_nothing(client: TestClient[Any], signer: TokenSigner) -> None:
    for scopes in (["brands:write"], ["suppressions:write"], ["leads:*"], ["frobnicate:everything"], []):
        r = client.get("/api/leads", headers=_key(signer, *scopes))
        assert r.status_code == 403, scopes
        assert r.json()["required_scope"] == "leads:read"


def test_routes_without_an_area_refuse_every_scoped_token(client: TestClient[Any], signer: TokenSigner) -> None:
    for path, method in (("/api/forgotten", "GET"), ("/api/password", "POST")):
        r = client.request(method, path, headers=_key(signer, "*"))
        assert r.status_code == 403, path
        assert r.json()["detail"] == "API keys may not do this; sign in as a person."


def test_any_token_routes_take_every_token(client: TestClient[Any], signer: TokenSigner) -> None:
    assert client.get("/api/whoami", headers=_key(signer, "messages:read")).json() == {"scopes": ["messages:read"]}
    assert client.get("/api/whoami", headers=signer.headers(org_id=uuid.uuid4())).json() == {"scopes": []}


def test_people_are_not_held_to_scopes(client: TestClient[Any], signer: TokenSigner) -> None:
    person = signer.headers(org_id=uuid.uuid4(), role=Role.ADMIN)
    assert client.post("/api/leads", headers=person).status_code == 201
    assert client.get("/api/leads/stats", headers=person).status_code == 200
    assert client.get("/api/forgotten", headers=person).status_code == 200
    assert client.post("/api/password", headers=person).status_code == 201


def test_star_allows_everything_the_role_allows_and_no_more(client: TestClient[Any], signer: TokenSigner) -> None:
    member = _key(signer, "*", role=Role.MEMBER)
    assert client.post("/api/leads", headers=member).status_code == 201
    assert client.get("/api/leads/stats", headers=member).status_code == 200
    r = client.delete(f"/api/leads/{uuid.uuid4()}", headers=member)  # admins only
    assert (r.status_code, r.json()["code"]) == (403, "Forbidden")


def test_a_scope_never_lifts_the_role(client: TestClient[Any], signer: TokenSigner) -> None:
    viewer = _key(signer, "leads:write", role=Role.VIEWER)
    assert client.get("/api/leads", headers=viewer).status_code == 200
    r = client.post("/api/leads", headers=viewer)
    assert r.status_code == 403
    assert r.json()["detail"] == "This action needs the member role or higher."


def test_a_key_token_without_scopes_is_still_scoped(client: TestClient[Any], signer: TokenSigner) -> None:
    bare = signer.headers(org_id=uuid.uuid4(), akid=str(uuid.uuid4()))  # an API key's token, no scopes claim
    assert client.get("/api/leads", headers=bare).status_code == 403
    assert client.get("/api/whoami", headers=bare).status_code == 200


def test_refusals_at_the_edge_of_a_service_are_logged_and_carry_the_request_id(
    client: TestClient[Any], signer: TokenSigner
) -> None:
    with capture_logs() as logs:
        missing = client.get("/api/leads", headers={"X-Request-ID": "no-token"})
        scoped = client.post("/api/leads", headers={**_key(signer, "leads:read"), "X-Request-ID": "no-scope"})
    assert (missing.status_code, missing.headers["x-request-id"]) == (401, "no-token")
    assert missing.headers["www-authenticate"] == "Bearer"
    assert (scoped.status_code, scoped.headers["x-request-id"]) == (403, "no-scope")
    assert [(e["path"], e["status"]) for e in logs if e["event"] == "request"] == [
        ("/api/leads", 401),
        ("/api/leads", 403),
    ]
