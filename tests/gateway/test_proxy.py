"""The gateway in one process: the proxy over httpx.ASGITransport in front of real Litestar apps."""

from __future__ import annotations

import hashlib
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from gateway.app import create_app
from gateway.proxy import GatewayProxy
from gateway.settings import GatewaySettings
from libs.settings import Environment
from tests.gateway.apps import GOOD_API_KEY, create_echo_app, create_fake_auth_app
from tests.support.servers import free_port
from tests.support.tokens import TokenSigner

LIMIT = 4096


@dataclass
class System:
    client: TestClient[Any]
    gateway: GatewayProxy
    auth: Litestar
    brand: Litestar
    campaign: Litestar


def _settings(**overrides: Any) -> GatewaySettings:
    return GatewaySettings(
        env=Environment.TEST, proxy_max_body_bytes=LIMIT, proxy_read_timeout=0.5, readiness_timeout=1.0, **overrides
    )


@pytest.fixture
def system(signer: TokenSigner) -> Iterator[System]:
    auth, brand, campaign = create_fake_auth_app(signer), create_echo_app("brand"), create_echo_app("campaign")
    gateway = create_app(_settings(), upstream_apps={"auth": auth, "brand": brand, "campaign": campaign})
    with TestClient(gateway, base_url="http://edge.example") as client:
        yield System(client, gateway, auth, brand, campaign)


def _headers(echo: dict[str, Any]) -> dict[str, list[str]]:
    seen: dict[str, list[str]] = {}
    for name, value in echo["headers"]:
        seen.setdefault(name, []).append(value)
    return seen


def test_routes_by_prefix_and_rewrites_headers(system: System, signer: TokenSigner) -> None:
    r = system.client.get(
        "/api/brands/42/senders?x=1&y=%20z",
        headers={
            **signer.headers(org_id=uuid.uuid4()),
            "X-Request-ID": "req-1",
            "X-Forwarded-For": "6.6.6.6",
            "X-Forwarded-Host": "evil.example",
            "X-Forwarded-Proto": "gopher",
            "X-User-Id": "forged",
            "X-Org-Id": "forged",
            "Connection": "keep-alive, X-Private-Hop",
            "X-Private-Hop": "secret",
            "Keep-Alive": "timeout=5",
            "Proxy-Authorization": "Basic abc",
            "TE": "trailers",
            "X-Custom": "kept",
        },
    )
    assert r.status_code == 200
    echo = r.json()
    assert echo["service"] == "brand"
    assert (echo["method"], echo["path"], echo["query"]) == ("GET", "/api/brands/42/senders", "x=1&y=%20z")
    seen = _headers(echo)
    for dropped in ("x-user-id", "x-org-id", "x-private-hop", "keep-alive", "proxy-authorization", "te", "connection"):
        assert dropped not in seen, dropped
    assert seen["x-forwarded-for"] == ["testclient"]
    assert seen["x-forwarded-host"] == ["edge.example"]
    assert seen["x-forwarded-proto"] == ["http"]
    assert seen["x-request-id"] == ["req-1"]
    assert seen["x-custom"] == ["kept"]
    assert seen["authorization"][0].startswith("Bearer ey")
    # the answer: hop-by-hop headers (and those its Connection header names) do not reach the client
    assert r.headers["x-request-id"] == "req-1"
    assert r.headers["x-kept"] == "yes"
    assert "keep-alive" not in r.headers
    assert "x-secret-hop" not in r.headers


def test_a_request_id_is_created_when_missing_or_unsafe(system: System) -> None:
    r = system.client.get("/hooks/twilio/sms", headers={"X-Request-ID": "no spaces allowed"})
    rid = r.headers["x-request-id"]
    assert rid != "no spaces allowed"
    assert len(rid) == 32
    assert _headers(r.json())["x-request-id"] == [rid]
    assert r.json()["service"] == "campaign"


def test_bodies_are_forwarded_intact_with_and_without_a_length(system: System) -> None:
    payload = bytes(range(256)) * 12  # 3072 bytes, under the limit
    r = system.client.post("/hooks/in", content=payload)
    assert r.json()["body_sha256"] == hashlib.sha256(payload).hexdigest()

    def chunks() -> Iterator[bytes]:
        yield payload[:1000]
        yield payload[1000:]

    r = system.client.post("/hooks/in", content=chunks())
    assert r.status_code == 200
    assert r.json()["body_length"] == len(payload)
    assert r.json()["body_sha256"] == hashlib.sha256(payload).hexdigest()


def test_an_oversize_body_is_a_413_problem_with_or_without_a_length(system: System) -> None:
    r = system.client.post("/hooks/in", content=b"x" * (LIMIT + 1))
    assert r.status_code == 413
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == "PayloadTooLarge"
    assert system.campaign.state.hits == 0  # refused on Content-Length alone

    def chunks() -> Iterator[bytes]:
        for _ in range(5):
            yield b"y" * 1000

    r = system.client.post("/hooks/in", content=chunks())
    assert r.status_code == 413
    assert r.json()["code"] == "PayloadTooLarge"


def test_upstream_problems_pass_through_unchanged(system: System) -> None:
    r = system.client.get("/hooks/x/problem")
    assert r.status_code == 409
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert (body["code"], body["detail"], body["hint"]) == ("Conflict", "The upstream says no.", "kept")


def test_a_hung_upstream_is_a_504_within_the_timeout(system: System) -> None:
    started = time.monotonic()
    r = system.client.get("/hooks/x/hang")
    elapsed = time.monotonic() - started
    assert r.status_code == 504
    assert r.json()["code"] == "UpstreamTimeout"
    assert 0.4 < elapsed < 2.0
    assert system.client.get("/hooks/ok").status_code == 200


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer", "Bearer not-a-jwt", "Basic dXNlcjpwYXNz", "forged", "expired", "hs256"],
)
def test_protected_prefixes_need_a_valid_token_before_the_upstream_is_contacted(
    system: System, signer: TokenSigner, authorization: str | None
) -> None:
    org = uuid.uuid4()
    if authorization == "forged":
        authorization = f"Bearer {TokenSigner(kid=signer.kid).mint(org_id=org)}"  # same kid, another key
    elif authorization == "expired":
        authorization = f"Bearer {signer.mint(org_id=org, ttl=-120)}"
    elif authorization == "hs256":
        import jwt

        authorization = "Bearer " + jwt.encode(
            {"sub": "x", "org": str(org)}, "secret-secret-secret-secret-secret", algorithm="HS256"
        )
    headers = {"Authorization": authorization} if authorization else {}
    r = system.client.post("/api/brands", json={"name": "x"}, headers=headers)
    assert r.status_code == 401
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.headers["www-authenticate"] == "Bearer"
    assert r.json()["code"] == "Unauthorized"
    assert system.brand.state.hits == 0


def test_public_prefixes_pass_without_a_token(system: System) -> None:
    assert system.client.get("/api/auth/jwks.json").status_code == 200
    assert system.client.get("/u/some-token").json()["service"] == "campaign"


def test_api_keys_are_exchanged_once_and_the_token_is_forwarded(system: System, signer: TokenSigner) -> None:
    headers = {"Authorization": f"Bearer {GOOD_API_KEY}"}
    first = system.client.get("/api/auth/me", headers=headers)
    second = system.client.get("/api/auth/me", headers=headers)
    assert first.status_code == second.status_code == 200
    forwarded = first.json()["authorization"]
    assert forwarded.startswith("Bearer ey")
    assert GOOD_API_KEY not in forwarded
    assert second.json()["authorization"] == forwarded  # served from the cache
    assert system.auth.state.exchanges == 1
    assert system.auth.state.hits == 2


def test_an_unknown_api_key_is_a_401_and_never_reaches_the_service(system: System) -> None:
    r = system.client.get("/api/brands", headers={"Authorization": "Bearer twk_unknown"})
    assert r.status_code == 401
    assert r.json()["code"] == "Unauthorized"
    assert system.auth.state.exchanges == 1
    assert system.brand.state.hits == 0


def test_the_exchange_endpoint_itself_gets_the_raw_key(system: System) -> None:
    r = system.client.post("/api/auth/api-keys/exchange", headers={"Authorization": f"Bearer {GOOD_API_KEY}"})
    assert r.status_code == 200
    assert r.json()["token_type"] == "bearer"
    assert system.auth.state.exchanges == 1


def test_own_routes_and_unknown_routes(system: System) -> None:
    assert system.client.get("/healthz").json() == {"status": "ok"}
    r = system.client.get("/api/no/such/route")  # any other path is a page of the web client
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == "NotFound"


def test_the_merged_openapi_has_every_service(system: System) -> None:
    r = system.client.get("/api/openapi.json")
    assert r.status_code == 200
    document = r.json()
    assert {"/api/brand/things", "/api/campaign/things", "/api/auth/me"} <= set(document["paths"])
    assert document["x-upstreams"] == {"auth": "ok", "brand": "ok", "campaign": "ok"}


def test_the_docs_page_works_offline(system: System) -> None:
    page = system.client.get("/api/docs")
    assert page.status_code == 200
    assert "https://" not in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    for asset in ("/api/docs/assets/swagger-ui-bundle.js", "/api/docs/assets/swagger-ui.css", "/api/docs/init.js"):
        assert asset in page.text or asset.endswith("init.js")
        r = system.client.get(asset)
        assert r.status_code == 200, asset
        assert len(r.content) > 100
    assert "/api/openapi.json" in system.client.get("/api/docs/init.js").text


def test_every_asset_the_docs_page_names_is_served_with_its_content_type(system: System) -> None:
    page = system.client.get("/api/docs")
    assert page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "default-src 'self'" in csp
    referenced = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    expected = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}
    assert len(referenced) >= 5
    for url in referenced:
        assert url.startswith("/api/docs/"), url  # same origin: nothing the CSP would refuse
        r = system.client.get(url)
        assert r.status_code == 200, url
        suffix = url[url.rfind(".") :]
        assert r.headers["content-type"].split(";")[0] in {expected[suffix], "application/javascript"}, url
        assert len(r.content) > 100, url
    bundle = system.client.get("/api/docs/assets/swagger-ui-bundle.js").text
    assert "SwaggerUIBundle" in bundle
    assert "3.1" in bundle  # Swagger UI 5: renders OpenAPI 3.1


def test_the_merged_openapi_documents_problems_and_the_gateways_own_routes(system: System) -> None:
    document = system.client.get("/api/openapi.json").json()
    assert "ProblemDetails" in document["components"]["schemas"]
    assert {"accessToken", "apiKey", "operatorSession"} <= set(document["components"]["securitySchemes"])
    paths = document["paths"]
    assert {"/healthz", "/readyz", "/api/ops/queues", "/ops/login", "/api/campaigns/{campaign_id}/stream"} <= set(paths)
    # the gateway's own answers for forwarded operations, as problems
    me = paths["/api/auth/me"]["get"]
    assert list(me["responses"]["503"]["content"]) == ["application/problem+json"]
    assert list(me["responses"]["401"]["content"]) == ["application/problem+json"]
    assert me["security"]  # the edge needs a token under /api/


def test_readyz_lists_every_upstream_the_database_and_redis(
    signer: TokenSigner, database_url: str, redis_url: str
) -> None:
    apps = {"auth": create_fake_auth_app(signer), "brand": create_echo_app("brand")}
    settings = _settings(database_url=database_url, redis_url=redis_url, campaign_url=f"http://127.0.0.1:{free_port()}")
    with TestClient(create_app(settings, upstream_apps=apps)) as client:
        r = client.get("/readyz")
        assert r.status_code == 503
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["checks"] == {
            "auth": "ok",
            "brand": "ok",
            "campaign": "down",
            "database": "ok",
            "redis": "ok",
        }
        document = client.get("/api/openapi.json").json()
        assert document["x-upstreams"]["campaign"] == "down"
        assert "/api/brand/things" in document["paths"]
        assert "/api/campaign/things" not in document["paths"]

    apps["campaign"] = create_echo_app("campaign")
    with TestClient(create_app(_settings(database_url=database_url, redis_url=redis_url), upstream_apps=apps)) as c:
        r = c.get("/readyz")
        assert r.status_code == 200
        assert set(r.json()["checks"].values()) == {"ok"}


async def test_plain_httpx_clients_drive_the_same_proxy(signer: TokenSigner) -> None:
    apps = {"auth": create_fake_auth_app(signer), "brand": create_echo_app("brand"), "campaign": create_echo_app()}
    gateway = create_app(_settings(), upstream_apps=apps)
    transport = httpx.ASGITransport(app=gateway)
    async with httpx.AsyncClient(transport=transport, base_url="http://edge") as client:
        r = await client.get("/api/brands", headers=signer.headers(org_id=uuid.uuid4()))
        assert r.status_code == 200
        assert r.json()["service"] == "brand"
        assert (await client.get("/api/brands")).status_code == 401
    await gateway.aclose()
