"""The gateway serves the web client: deep links fall back to index.html, hashed assets are cached
for a year, every page runs under a strict CSP, and no API path is ever answered by the client."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from gateway import web
from gateway.app import create_app
from gateway.settings import GatewaySettings
from libs.settings import Environment
from tests.gateway.apps import create_echo_app, create_fake_auth_app
from tests.support.tokens import TokenSigner

INDEX = '<!doctype html><html><head><script type="module" src="/assets/index-abc123.js"></script></head></html>'


@pytest.fixture
def dist(tmp_path: Path) -> Path:
    folder = tmp_path / "dist"
    (folder / "assets").mkdir(parents=True)
    (folder / "index.html").write_text(INDEX)
    (folder / "assets" / "index-abc123.js").write_text("console.log('client')")
    (folder / "assets" / "index-abc123.css").write_text("body{}")
    (folder / "favicon.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    (folder / ".build-hash").write_text("0" * 64)
    (tmp_path / "secret.txt").write_text("outside the client")
    return folder


def _client(signer: TokenSigner, dist: Path, monkeypatch: pytest.MonkeyPatch) -> TestClient[Any]:
    monkeypatch.setattr(web, "WEB_DIST", dist)
    apps = {"auth": create_fake_auth_app(signer), "brand": create_echo_app("brand"), "campaign": create_echo_app()}
    settings = GatewaySettings(env=Environment.TEST, readiness_timeout=1.0)
    return TestClient(create_app(settings, upstream_apps=apps), base_url="http://edge.example")


@pytest.fixture
def client(signer: TokenSigner, dist: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient[Any]]:
    with _client(signer, dist, monkeypatch) as client:
        yield client


def _is_index(response: Any) -> bool:
    return response.status_code == 200 and response.text == INDEX


@pytest.mark.parametrize("path", ["/", "/index.html", "/signin", "/brands", "/brands/0b7c/senders", "/onboarding?x=1"])
def test_the_root_and_deep_links_answer_index_html_revalidated(client: TestClient[Any], path: str) -> None:
    r = client.get(path)
    assert _is_index(r), (path, r.status_code, r.text[:200])
    assert r.headers["content-type"].startswith("text/html")
    assert r.headers["cache-control"] == "no-cache"


def test_hashed_assets_are_immutable_and_typed(client: TestClient[Any]) -> None:
    r = client.get("/assets/index-abc123.js")
    assert r.status_code == 200
    assert r.text == "console.log('client')"
    assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert r.headers["content-type"].split(";")[0] == "text/javascript"
    css = client.get("/assets/index-abc123.css")
    assert css.headers["content-type"].split(";")[0] == "text/css"
    # a file outside /assets/ is not content-addressed: revalidated like index.html
    assert client.get("/favicon.svg").headers["cache-control"] == "no-cache"


def test_every_client_answer_carries_the_strict_csp(client: TestClient[Any]) -> None:
    for path in ("/", "/brands", "/assets/index-abc123.js"):
        csp = client.get(path).headers["content-security-policy"]
        directives = {part.strip().split(" ", 1)[0]: part.strip() for part in csp.split(";")}
        assert directives["default-src"] == "default-src 'self'"
        assert directives["script-src"] == "script-src 'self'"  # no 'unsafe-inline', no CDN
        assert directives["frame-ancestors"] == "frame-ancestors 'none'"
        assert directives["base-uri"] == "base-uri 'none'"
        assert directives["form-action"] == "form-action 'self'"
        assert "unsafe" not in csp


def test_missing_assets_hidden_files_and_escapes_are_404_not_the_client(client: TestClient[Any]) -> None:
    for path in ("/assets/gone-000.js", "/favicon.ico", "/.build-hash", "/../secret.txt", "/%2e%2e/secret.txt"):
        r = client.get(path)
        assert r.status_code == 404, (path, r.status_code)
        assert "outside the client" not in r.text
        assert r.headers["content-type"].startswith("application/problem+json"), path


@pytest.mark.parametrize(
    "path", ["/api/nothing-here", "/api/docs/nothing", "/ops/nothing", "/metrics/x", "/healthz/x", "/readyz/x"]
)
def test_api_and_gateway_paths_are_never_swallowed_by_the_client(client: TestClient[Any], path: str) -> None:
    r = client.get(path)
    assert not _is_index(r), path
    assert r.status_code >= 400, (path, r.status_code)
    assert r.headers["content-type"].startswith("application/problem+json"), (path, r.headers["content-type"])


@pytest.mark.parametrize("path", ["/hooks/nothing", "/u/x", "/o/x", "/c/x", "/api/brands/x/senders"])
def test_routed_paths_still_reach_their_service(client: TestClient[Any], signer: TokenSigner, path: str) -> None:
    r = client.get(path, headers=signer.headers(org_id=uuid.uuid4()))
    assert not _is_index(r), path
    assert r.json()["path"] == path  # the echo upstream answered


def test_reserved_prefixes_match_whole_segments() -> None:
    assert [web.reserved(p) for p in ("/api", "/api/x", "/u/t", "/metrics")] == [True] * 4
    assert [web.reserved(p) for p in ("/apiary", "/users", "/onboarding", "/")] == [False] * 4
    # Other spellings of a reserved area are not pages of the client either.
    assert [web.reserved(p) for p in ("//ops/rq/", "/OPS/rq/", "/Api//x", "///metrics")] == [True] * 4


def test_the_gateways_own_and_proxied_routes_still_answer(client: TestClient[Any]) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/api/docs").headers["content-type"].startswith("text/html")
    assert "SwaggerUIBundle" in client.get("/api/docs/init.js").text
    assert client.get("/ops/login").status_code == 200
    echo = client.get("/u/some-token").json()  # a public prefix the campaign service answers
    assert echo["path"] == "/u/some-token"
    assert client.get("/api/brands").status_code == 401  # the edge still wants a token


def test_without_a_build_the_root_says_how_to_build_it(
    signer: TokenSigner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _client(signer, tmp_path / "not-built", monkeypatch) as client:
        r = client.get("/")
        assert r.status_code == 503
        assert r.headers["content-type"].startswith("application/problem+json")
        assert "npm run build" in r.json()["detail"]
        assert client.get("/brands").status_code == 503
        assert client.get("/api/nothing-here").status_code != 503


@pytest.mark.parametrize("path", ["/", "/signin", "/brands/0b7c/senders", "/assets/index-abc123.js", "/favicon.svg"])
def test_head_answers_like_get_without_a_body(client: TestClient[Any], path: str) -> None:
    got = client.get(path)
    head = client.head(path)
    assert head.status_code == 200, (path, head.status_code)
    assert head.content == b""
    names = ("content-type", "content-length", "cache-control", "content-security-policy", "x-content-type-options")
    for name in names:
        assert head.headers[name] == got.headers[name], (path, name)
    assert int(head.headers["content-length"]) == len(got.content)


@pytest.mark.parametrize(
    "path", ["/api/nothing-here", "/metrics/x", "/healthz/x", "/assets/gone-000.js", "/.build-hash"]
)
def test_head_of_a_reserved_path_or_missing_file_is_the_gets_404(client: TestClient[Any], path: str) -> None:
    got = client.get(path)
    head = client.head(path)
    assert head.status_code == got.status_code == 404, (path, head.status_code)
    assert head.headers["content-type"].startswith("application/problem+json"), path


def test_head_without_a_build_is_503_like_get(
    signer: TokenSigner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _client(signer, tmp_path / "not-built", monkeypatch) as client:
        assert client.head("/").status_code == 503
        assert client.head("/brands").status_code == 503
