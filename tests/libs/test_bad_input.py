"""Bad input is the client's error on every service: a 4xx problem naming the field, never a 500.

The services are built as they run (``create_app``), so what is checked here is the shared
wiring of ``libs.app`` every one of them gets: the request class that decodes bodies, the NUL
check on query parameters, authentication of every method.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from pydantic import SecretStr

from libs.settings import Environment
from services.auth.app import create_app as create_auth_app
from services.auth.settings import AuthSettings
from services.brand.app import create_app as create_brand_app
from services.brand.settings import BrandSettings
from services.campaign.app import create_app as create_campaign_app
from services.campaign.settings import CampaignSettings
from tests.conftest import REDIS_TEST_DB
from tests.support.servers import create_database, drop_database
from tests.support.tokens import TokenSigner

PROBLEM = "application/problem+json"
JSON = {"content-type": "application/json"}

DEEP_LIST = b"[" * 100_000
DEEP_OBJECT = b'{"a":' * 5_000
NOT_UTF8 = b'{"email":"c@x.example","password":"correct horse battery","x":"\xff"}'
UNDECODABLE = {"deep-list": DEEP_LIST, "deep-object": DEEP_OBJECT, "invalid-utf8": NOT_UTF8}


@dataclass
class Services:
    """The three services on one database, a token for the brand and campaign services, one from auth for auth."""

    auth: TestClient[Litestar]
    brand: TestClient[Litestar]
    campaign: TestClient[Litestar]
    token: dict[str, str]
    auth_token: dict[str, str]

    def client(self, service: str) -> TestClient[Litestar]:
        client: TestClient[Litestar] = getattr(self, service)
        return client

    def headers(self, service: str) -> dict[str, str]:
        return self.auth_token if service == "auth" else self.token


@pytest.fixture(scope="module")
def services(
    pg_server_url: str, template_db: str, redis_server_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Services]:
    # One set of services for the module: nothing here is stored (every request is refused).
    database_url = create_database(pg_server_url, template=template_db)
    redis_url = redis_server_url.rsplit("/", 1)[0] + f"/{REDIS_TEST_DB}"
    signer = TokenSigner()
    common: dict[str, Any] = {"env": Environment.TEST, "database_url": database_url, "redis_url": redis_url}
    auth = create_auth_app(AuthSettings(**common, database_pool_size=2))
    brand = create_brand_app(BrandSettings(**common, secret_key=SecretStr("bad-input-key")), verifier=signer.verifier())
    campaign = create_campaign_app(
        CampaignSettings(**common, data_dir=tmp_path_factory.mktemp("campaign"), secret_key=SecretStr("bad-input-key")),
        verifier=signer.verifier(),
    )
    try:
        with TestClient(auth) as a, TestClient(brand) as b, TestClient(campaign) as c:
            signup = {"email": "owner@bad-input.example", "password": "correct horse battery staple"}
            r = a.post("/api/auth/signup", json={**signup, "organization_name": "Acme", "name": "Owner"})
            assert r.status_code == 201, r.text
            yield Services(
                auth=a,
                brand=b,
                campaign=c,
                token=signer.headers(org_id=uuid.uuid4()),
                auth_token={"Authorization": f"Bearer {r.json()['access_token']}"},
            )
    finally:
        drop_database(pg_server_url, database_url)


# (service, path, needs a token): JSON routes of every service, the unauthenticated ones included.
JSON_ROUTES = [
    ("auth", "/api/auth/login", False),
    ("auth", "/api/auth/signup", False),
    ("auth", "/api/auth/refresh", False),
    ("auth", "/api/auth/invites/accept", False),
    ("auth", "/api/auth/invites", True),
    ("brand", "/api/brands", True),
    ("brand", "/api/credentials", True),
    ("campaign", "/api/leads", True),
    ("campaign", "/api/campaigns", True),
    ("campaign", "/api/suppressions", True),
]
ROUTE_IDS = [f"{service}:{path}" for service, path, _ in JSON_ROUTES]


def _post(services: Services, service: str, path: str, authed: bool, body: bytes) -> Any:
    headers = {**JSON, **(services.headers(service) if authed else {})}
    return services.client(service).post(path, content=body, headers=headers)


def _problem(r: Any, status: int) -> dict[str, Any]:
    assert r.status_code == status, (r.status_code, r.text[:300])
    assert r.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = r.json()
    assert body["status"] == status
    return body


@pytest.mark.parametrize(("service", "path", "authed"), JSON_ROUTES, ids=ROUTE_IDS)
def test_a_body_the_decoder_cannot_take_is_a_400_problem(
    services: Services, service: str, path: str, authed: bool
) -> None:
    for name, body in UNDECODABLE.items():
        problem = _problem(_post(services, service, path, authed, body), 400)
        assert problem["code"] == "BadRequest", name
        assert problem["errors"][0]["field"] == "body", name


@pytest.mark.parametrize(("service", "path", "authed"), JSON_ROUTES, ids=ROUTE_IDS)
def test_a_nul_in_a_json_string_is_a_422_naming_the_field(
    services: Services, service: str, path: str, authed: bool
) -> None:
    problem = _problem(_post(services, service, path, authed, b'{"name": "Ada\\u0000", "email": "a@x.example"}'), 422)
    assert problem["code"] == "Invalid"
    assert problem["errors"] == [{"field": "name", "message": "must not contain NUL characters", "source": "body"}]
    # A raw NUL byte is not JSON at all.
    assert _post(services, service, path, authed, b'{"name": "Ada\x00"}').status_code == 400


def test_a_nul_deep_in_a_body_names_its_path(services: Services) -> None:
    body = b'{"email": "a@x.example", "custom_fields": {"plan": "gold", "tier": ["a", "b\\u0000"]}}'
    problem = _problem(_post(services, "campaign", "/api/leads", True, body), 422)
    assert [e["field"] for e in problem["errors"]] == ["custom_fields.tier.1"]
    body = b'{"email": "a@x.example", "custom_fields": {"pl\\u0000an": "gold"}}'
    problem = _problem(_post(services, "campaign", "/api/leads", True, body), 422)
    assert [e["field"] for e in problem["errors"]] == ["custom_fields"]


def test_a_nul_in_a_free_form_json_value_never_reaches_postgresql(services: Services) -> None:
    # custom_fields is stored as JSONB, which refuses \u0000 (a 500 before the body was checked).
    r = _post(services, "campaign", "/api/leads", True, b'{"email": "a@x.example", "custom_fields": {"k": "\\u0000"}}')
    assert _problem(r, 422)["errors"][0]["field"] == "custom_fields.k"


NUL_QUERIES = [
    ("campaign", "/api/leads", "q"),
    ("campaign", "/api/leads", "email"),
    ("campaign", "/api/leads", "company"),
    ("campaign", "/api/suppressions", "q"),
    ("campaign", "/api/campaigns", "name"),
    ("brand", "/api/brands", "anything"),
    ("auth", "/api/auth/members", "q"),
]


@pytest.mark.parametrize(("service", "path", "param"), NUL_QUERIES, ids=[f"{s}:{p}?{q}" for s, p, q in NUL_QUERIES])
def test_a_nul_in_a_query_parameter_is_a_fast_422_naming_it(
    services: Services, service: str, path: str, param: str
) -> None:
    started = time.perf_counter()
    r = services.client(service).get(f"{path}?limit=5&{param}=ab%00c", headers=services.headers(service))
    elapsed = time.perf_counter() - started
    problem = _problem(r, 422)
    assert problem["code"] == "Invalid"
    assert problem["errors"] == [{"field": param, "message": "must not contain NUL characters", "source": "query"}]
    assert problem["request_id"] == r.headers["x-request-id"]
    assert elapsed < 0.5  # refused before any query runs (PostgreSQL took 1.5 s to refuse it)


def test_a_nul_in_a_query_parameter_is_refused_without_a_token_too(services: Services) -> None:
    problem = _problem(services.auth.post("/api/auth/login?next=%00", json={}), 422)
    assert problem["errors"][0]["field"] == "next"


def test_every_query_parameter_holding_nul_is_named_once(services: Services) -> None:
    r = services.campaign.get("/api/leads?q=%00&email=a%00&q=b%00&company=ok", headers=services.token)
    assert [e["field"] for e in _problem(r, 422)["errors"]] == ["q", "email"]


def test_a_nul_in_the_path_is_a_422(services: Services) -> None:
    r = services.campaign.get("/u/a%00b")  # a public route with a free-form path parameter
    assert _problem(r, 422)["errors"][0] == {
        "field": "path",
        "message": "must not contain NUL characters",
        "source": "path",
    }


OPTIONS_PATHS = [
    ("brand", "/api/brands"),
    ("brand", f"/api/brands/{uuid.uuid4()}"),
    ("brand", "/api/credentials"),
    ("campaign", "/api/campaigns"),
    ("campaign", f"/api/campaigns/{uuid.uuid4()}"),
    ("campaign", "/api/leads"),
    ("campaign", "/api/suppressions"),
    ("auth", "/api/auth/members"),
]


@pytest.mark.parametrize(("service", "path"), OPTIONS_PATHS, ids=[f"{s}:{p}" for s, p in OPTIONS_PATHS])
def test_options_with_a_token_answers_allow_and_without_one_401(services: Services, service: str, path: str) -> None:
    client = services.client(service)
    r = client.options(path, headers=services.headers(service))
    assert r.status_code == 204, (r.status_code, r.text[:300])
    allow = set(r.headers["allow"].split(", "))
    assert {"GET", "OPTIONS"} <= allow  # every method of the path, not only those registered first
    if path == "/api/brands":
        assert allow == {"GET", "OPTIONS", "POST"}
    elif path.startswith("/api/brands/"):
        assert allow == {"DELETE", "GET", "OPTIONS", "PATCH"}
    _problem(client.options(path), 401)
