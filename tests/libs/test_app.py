"""The wiring every service shares: auth, guards, problem details, request ids, sessions."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import jwt
import pytest
from litestar import get, post
from litestar.di import NamedDependency
from litestar.params import FromQuery, JSONBody
from litestar.testing import TestClient
from pydantic import BaseModel, Field
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession
from structlog.testing import capture_logs

from libs.app import create_service_app
from libs.db.models import Organization
from libs.db.session import Database
from libs.errors import Conflict
from libs.security import PUBLIC, Principal, Role, requires
from libs.settings import CommonSettings
from tests.support.smtp import unused_port
from tests.support.tokens import TokenSigner


class Thing(BaseModel):
    name: str = Field(min_length=1, max_length=10)
    count: int = Field(ge=0)


@get("/public", opt=PUBLIC, sync_to_thread=False)
def public() -> dict[str, str]:
    return {"ok": "yes"}


@post("/things", guards=[requires(Role.MEMBER)], sync_to_thread=False)
def create_thing(data: JSONBody[Thing], principal: NamedDependency[Principal]) -> dict[str, str]:
    return {"name": data.name, "org": str(principal.org_id)}


@get("/conflict", guards=[requires(Role.VIEWER)], sync_to_thread=False)
def conflict() -> None:
    raise Conflict("Already there.")


@post("/orgs", guards=[requires(Role.VIEWER)])
async def create_org(
    session: NamedDependency[AsyncSession], principal: NamedDependency[Principal], fail: FromQuery[bool] = False
) -> dict[str, int]:
    session.add(Organization(id=principal.org_id, name="mine"))
    await session.flush()
    if fail:
        raise Conflict("rolled back")
    count = len((await session.exec(select(Organization))).all())
    return {"visible": count}


@pytest.fixture
def client(settings: CommonSettings, signer: TokenSigner) -> Iterator[TestClient]:  # type: ignore[type-arg]
    app = create_service_app(
        name="test",
        title="test",
        settings=settings,
        route_handlers=[public, create_thing, conflict, create_org],
        verifier=signer.verifier(),
    )
    with TestClient(app) as c:
        yield c


def test_public_route_needs_no_token(client: TestClient) -> None:  # type: ignore[type-arg]
    assert client.get("/public").json() == {"ok": "yes"}


def test_missing_token_is_a_401_problem(client: TestClient) -> None:  # type: ignore[type-arg]
    r = client.post("/things", json={"name": "a", "count": 1})
    assert r.status_code == 401
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == "Unauthorized"


def test_hs256_token_signed_with_the_public_key_is_refused(client: TestClient, signer: TokenSigner) -> None:  # type: ignore[type-arg]
    forged = jwt.encode(
        {"sub": str(uuid.uuid4()), "org": str(uuid.uuid4()), "role": "owner"},
        "secret-guess-000000000000000000000",
        algorithm="HS256",
        headers={"kid": signer.kid},
    )
    r = client.post("/things", json={"name": "a", "count": 1}, headers={"Authorization": f"Bearer {forged}"})
    assert r.status_code == 401


def test_expired_token_is_refused(client: TestClient, signer: TokenSigner) -> None:  # type: ignore[type-arg]
    headers = signer.headers(org_id=uuid.uuid4(), ttl=-120)
    assert client.post("/things", json={"name": "a", "count": 1}, headers=headers).status_code == 401


def test_token_from_an_unknown_key_is_refused(client: TestClient) -> None:  # type: ignore[type-arg]
    headers = TokenSigner().headers(org_id=uuid.uuid4())
    assert client.post("/things", json={"name": "a", "count": 1}, headers=headers).status_code == 401


def test_viewer_cannot_write(client: TestClient, signer: TokenSigner) -> None:  # type: ignore[type-arg]
    headers = signer.headers(org_id=uuid.uuid4(), role=Role.VIEWER)
    r = client.post("/things", json={"name": "a", "count": 1}, headers=headers)
    assert r.status_code == 403
    assert r.json()["code"] == "Forbidden"


def test_validation_errors_name_every_field(client: TestClient, signer: TokenSigner) -> None:  # type: ignore[type-arg]
    r = client.post("/things", json={"name": "", "count": -1}, headers=signer.headers(org_id=uuid.uuid4()))
    assert r.status_code == 422
    body = r.json()
    assert body["code"] == "Invalid"
    assert {e["field"] for e in body["errors"]} == {"name", "count"}


def test_bad_json_is_a_400_problem(client: TestClient, signer: TokenSigner) -> None:  # type: ignore[type-arg]
    headers = {**signer.headers(org_id=uuid.uuid4()), "Content-Type": "application/json"}
    r = client.post("/things", content=b"{not json", headers=headers)
    assert r.status_code == 400
    assert r.headers["content-type"].startswith("application/problem+json")


def test_oversized_body_is_a_413_problem(client: TestClient, signer: TokenSigner) -> None:  # type: ignore[type-arg]
    headers = {**signer.headers(org_id=uuid.uuid4()), "Content-Type": "application/json"}
    r = client.post("/things", content=b'{"name": "' + b"x" * 2_000_000 + b'"}', headers=headers)
    assert r.status_code == 413
    assert r.headers["content-type"].startswith("application/problem+json")


def test_domain_error_carries_code_and_request_id(client: TestClient, signer: TokenSigner) -> None:  # type: ignore[type-arg]
    r = client.get("/conflict", headers={**signer.headers(org_id=uuid.uuid4()), "X-Request-ID": "req-123"})
    assert r.status_code == 409
    assert r.json()["code"] == "Conflict"
    assert r.json()["request_id"] == "req-123"
    assert r.headers["x-request-id"] == "req-123"


def test_session_commits_on_success_and_rolls_back_on_error(client: TestClient, signer: TokenSigner) -> None:  # type: ignore[type-arg]
    a, b = uuid.uuid4(), uuid.uuid4()
    assert client.post("/orgs", headers=signer.headers(org_id=a)).json() == {"visible": 1}
    assert client.post("/orgs", params={"fail": True}, headers=signer.headers(org_id=b)).status_code == 409
    # b's insert rolled back, so b can insert again; a's row stays invisible to b.
    assert client.post("/orgs", headers=signer.headers(org_id=b)).json() == {"visible": 1}


def request_lines(logs: list[dict[str, object]]) -> list[tuple[object, object]]:
    return [(e["path"], e["status"]) for e in logs if e["event"] == "request"]


def test_succeeding_probes_are_not_logged_as_requests(client: TestClient) -> None:  # type: ignore[type-arg]
    with capture_logs() as logs:
        for _ in range(3):
            assert client.get("/healthz").status_code == 200
            assert client.get("/readyz").status_code == 200
        assert client.get("/public").status_code == 200
    assert request_lines(logs) == [("/public", 200)]


def test_a_failing_readiness_probe_is_still_logged(settings: CommonSettings, signer: TokenSigner) -> None:
    down = Database.from_url(f"postgresql+psycopg://postgres@127.0.0.1:{unused_port()}/none", pool_size=1)
    app = create_service_app(name="test", title="test", settings=settings, route_handlers=[], database=down,
                             verifier=signer.verifier())  # fmt: skip
    with TestClient(app) as c, capture_logs() as logs:
        assert c.get("/readyz").status_code == 503
        assert c.get("/healthz").status_code == 200
    assert request_lines(logs) == [("/readyz", 503)]
