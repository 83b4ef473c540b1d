"""The gateway and its upstreams as real uvicorn processes, talking HTTP over loopback."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.gateway.apps import signer_env
from tests.gateway.processes import App, Server, running
from tests.support.servers import free_port
from tests.support.tokens import TokenSigner

pytestmark = pytest.mark.e2e

LIMIT = 256 * 1024
# Long enough that a loaded machine's slow echo is not taken for a hang, short enough to wait out.
READ_TIMEOUT = 2.0


@pytest.fixture(scope="module")
def echo_and_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Server]]:
    logs = tmp_path_factory.mktemp("gateway-processes")
    echo = App("tests.gateway.apps:create_echo_app", logs / "echo.log")
    env = {
        "SDR_ENV": "test",
        "SDR_UPSTREAMS": json.dumps({"echo": echo.url, "dead": f"http://127.0.0.1:{free_port()}"}),
        "SDR_ROUTES": json.dumps({"/hooks": "echo", "/dead": "dead"}),
        "SDR_PROXY_READ_TIMEOUT": str(READ_TIMEOUT),
        "SDR_PROXY_MAX_BODY_BYTES": str(LIMIT),
    }
    with running(echo, App("gateway.app:create_app", logs / "gateway.log", env)) as (echo_server, gateway):
        yield echo_server, gateway


@pytest.fixture
def client(echo_and_gateway: tuple[Server, Server]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=echo_and_gateway[1].url, timeout=10) as c:
        yield c


def test_headers_and_bodies_over_real_http(client: httpx.Client, echo_and_gateway: tuple[Server, Server]) -> None:
    payload = bytes(range(256)) * 400  # 100 KiB: streamed, not buffered
    r = client.post(
        "/hooks/in%20box?sig=a%2Bb",
        content=payload,
        headers={"X-Request-ID": "proc-1", "X-Forwarded-Host": "evil", "Connection": "X-Hop", "X-Hop": "1"},
    )
    assert r.status_code == 200
    echo = r.json()
    assert echo["body_sha256"] == hashlib.sha256(payload).hexdigest()
    assert echo["query"] == "sig=a%2Bb"
    assert echo["path"] == "/hooks/in box"
    seen = dict(echo["headers"])
    assert seen["x-forwarded-host"] == f"127.0.0.1:{echo_and_gateway[1].port}"
    assert seen["x-forwarded-for"] == "127.0.0.1"
    assert seen["x-request-id"] == "proc-1"
    assert "x-hop" not in seen
    assert r.headers["x-request-id"] == "proc-1"
    assert "x-secret-hop" not in r.headers
    assert "keep-alive" not in r.headers


def test_a_streamed_response_arrives_whole(client: httpx.Client) -> None:
    r = client.get("/hooks/x/stream")
    assert r.status_code == 200
    expected = b"".join(f"chunk {i:04d}\n".encode() * 200 for i in range(50))
    assert r.content == expected
    assert "x-secret-hop" not in r.headers


def test_an_oversize_chunked_body_is_a_413(client: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(10):
            yield b"z" * (64 * 1024)

    r = client.post("/hooks/in", content=chunks())
    assert r.status_code == 413
    assert r.json()["code"] == "PayloadTooLarge"
    r = client.post("/hooks/in", content=b"z" * (LIMIT + 1))
    assert r.status_code == 413


def test_a_dead_upstream_is_a_fast_503_while_others_keep_working(client: httpx.Client) -> None:
    started = time.monotonic()
    r = client.get("/dead/anything")
    assert time.monotonic() - started < 1.0
    assert r.status_code == 503
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == "UpstreamUnavailable"
    assert client.get("/hooks/ok").status_code == 200


def test_a_hung_upstream_is_a_504_within_the_timeout_and_blocks_nobody(client: httpx.Client) -> None:
    started = time.monotonic()
    r = client.get("/hooks/x/hang")
    elapsed = time.monotonic() - started
    assert r.status_code == 504
    assert r.json()["code"] == "UpstreamTimeout"
    assert READ_TIMEOUT - 0.1 < elapsed < READ_TIMEOUT + 1.5
    assert client.get("/hooks/ok").status_code == 200


def test_killing_a_service_gives_503_for_its_routes_only(
    tmp_path: Path, signer: TokenSigner, database_url: str, redis_url: str
) -> None:
    common = {"SDR_ENV": "test", "SDR_DATABASE_URL": database_url, "SDR_REDIS_URL": redis_url}
    auth = App("tests.gateway.apps:create_fake_auth_app", tmp_path / "auth.log", signer_env(signer))
    brand = App(
        "services.brand.app:create_app",
        tmp_path / "brand.log",
        {**common, "SDR_JWKS_URL": f"{auth.url}/api/auth/jwks.json"},
    )
    gateway_env = {
        **common,
        "SDR_AUTH_URL": auth.url,
        "SDR_BRAND_URL": brand.url,
        "SDR_CAMPAIGN_URL": f"http://127.0.0.1:{free_port()}",
    }
    gateway = App("gateway.app:create_app", tmp_path / "gateway.log", gateway_env)
    with (
        running(auth, brand, gateway) as (_, brand_server, gateway_server),
        httpx.Client(base_url=gateway_server.url, timeout=10, headers=signer.headers(org_id=uuid.uuid4())) as client,
    ):
        missing = f"/api/brands/{uuid.uuid4()}"
        r = client.get(missing)
        assert r.status_code == 404  # the brand service itself answered (it verified the token too)
        assert r.json()["instance"] == missing
        assert client.get("/api/auth/me").status_code == 200

        brand_server.kill()
        started = time.monotonic()
        r = client.get(missing)
        assert time.monotonic() - started < 1.0
        assert r.status_code == 503
        assert r.json()["code"] == "UpstreamUnavailable"
        assert client.get("/api/auth/me").status_code == 200
        assert client.get("/healthz").status_code == 200
        ready = client.get("/readyz")
        assert ready.status_code == 503
        checks = ready.json()["checks"]
        assert (checks["auth"], checks["brand"], checks["campaign"]) == ("ok", "down", "down")
        assert (checks["database"], checks["redis"]) == ("ok", "ok")
