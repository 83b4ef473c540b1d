"""Every answer of the gateway carries its security headers: proxied, its own, problems, pages, streams."""

from __future__ import annotations

from typing import Any

import anyio

from gateway.headers import secure_headers
from tests.gateway.ops.conftest import Ops

BROWSER = "text/html,application/xhtml+xml"
DENIED = ("camera=()", "microphone=()", "geolocation=()", "payment=()", "usb=()")


def _requests(ops: Ops) -> dict[str, tuple[str, dict[str, str]]]:
    return {
        "proxied JSON": ("/api/brands/1", ops.customer_admin()),
        "proxied problem": ("/api/campaigns/problem", ops.customer_admin()),
        "edge 401": ("/api/brands", {}),
        "own JSON": ("/healthz", {}),
        "own 404": ("/api/nothing-here", ops.customer_admin()),
        "merged document": ("/api/openapi.json", {}),
        "docs page": ("/api/docs", {}),
        "docs asset": ("/api/docs/assets/swagger-ui.css", {}),
        "sign-in page": ("/ops/login", {}),
        "sign-in redirect": ("/ops/rq/", {"Accept": BROWSER}),
        "dashboard 401": ("/ops/rq/jobs", {}),
        "dashboard": ("/ops/rq/", ops.operator()),
        "queue API": ("/api/ops/queues", ops.operator()),
        "campaign stream problem": ("/api/campaigns/not-a-uuid/stream", ops.customer_admin()),
    }


JSON_KINDS = ("proxied JSON", "proxied problem", "edge 401", "own JSON", "own 404", "merged document", "queue API")


def test_every_answer_denies_sniffing_framing_and_browser_features(ops: Ops) -> None:
    for kind, (path, headers) in _requests(ops).items():
        r = ops.client.get(path, headers=headers, follow_redirects=False)
        assert r.status_code < 500, (kind, r.text)
        assert r.headers.get_list("x-content-type-options") == ["nosniff"], kind
        policy = r.headers["permissions-policy"]
        assert all(feature in policy for feature in DENIED), (kind, policy)
        assert r.headers["referrer-policy"] in ("strict-origin", "same-origin"), kind
        assert r.headers.get_list("x-frame-options") == ["DENY"], kind
        csp = r.headers.get_list("content-security-policy")
        assert len(csp) == 1, (kind, csp)
        assert "frame-ancestors 'none'" in csp[0], (kind, csp)
        assert r.headers["x-request-id"], kind


def test_api_json_and_problems_are_never_stored(ops: Ops) -> None:
    requests = _requests(ops)
    for kind in JSON_KINDS:
        path, headers = requests[kind]
        r = ops.client.get(path, headers=headers)
        assert "json" in r.headers["content-type"], kind
        assert r.headers.get_list("cache-control") == ["no-store"], kind


def test_the_docs_keep_their_policy_and_their_files_stay_cacheable(ops: Ops) -> None:
    page = ops.client.get("/api/docs")
    csp = page.headers["content-security-policy"]
    assert csp.startswith("default-src 'self'")
    assert "script-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    asset = ops.client.get("/api/docs/assets/swagger-ui-bundle.js")
    assert asset.status_code == 200
    assert "no-store" not in asset.headers.get("cache-control", "")
    dashboard = ops.client.get("/ops/rq/", headers=ops.operator())
    # the dashboard's own stricter values stay as they are
    assert dashboard.headers["referrer-policy"] == "same-origin"
    assert dashboard.headers["content-security-policy"].startswith("default-src 'none'; script-src 'self' 'nonce-")


def test_the_operator_stream_keeps_streaming_with_the_headers(ops: Ops) -> None:
    head: dict[str, Any] = {}
    first: list[bytes] = []

    async def run() -> None:
        gone = anyio.Event()
        asked = False

        async def receive() -> dict[str, Any]:
            nonlocal asked
            if not asked:
                asked = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await gone.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                head.update(message)
            elif message.get("body"):
                first.append(message["body"])
                gone.set()

        token = ops.operator()["Authorization"].encode()
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": "/api/ops/queues/stream",
            "raw_path": b"/api/ops/queues/stream",
            "query_string": b"",
            "root_path": "",
            "headers": [(b"host", b"edge.example"), (b"authorization", token)],
            "client": ("127.0.0.1", 5000),
            "server": ("edge.example", 80),
            "state": {},
        }
        with anyio.fail_after(10):
            await ops.client.app(scope, receive, send)

    ops.client.blocking_portal.call(run)
    headers = {name.decode(): value.decode() for name, value in head["headers"]}
    assert head["status"] == 200
    assert headers["content-type"] == "text/event-stream"
    assert [v for n, v in head["headers"] if n == b"cache-control"] == [b"no-store"]
    assert headers["x-content-type-options"] == "nosniff"
    assert first[0].startswith(b": connected")


def test_what_an_answer_already_says_is_kept() -> None:
    kept = secure_headers(
        "/api/auth/jwks.json",
        [
            (b"content-type", b"application/json"),
            (b"cache-control", b"public, max-age=60"),
            (b"referrer-policy", b"no-referrer"),
            (b"content-security-policy", b"default-src 'none';"),
        ],
    )
    assert (b"cache-control", b"public, max-age=60") in kept
    assert [v for n, v in kept if n == b"cache-control"] == [b"public, max-age=60"]
    assert [v for n, v in kept if n == b"referrer-policy"] == [b"no-referrer"]
    assert [v for n, v in kept if n == b"content-security-policy"] == [b"default-src 'none'; frame-ancestors 'none'"]
    html = secure_headers(
        "/u/token", [(b"content-type", b"text/html"), (b"content-security-policy", b"frame-ancestors 'self'")]
    )
    assert [v for n, v in html if n == b"content-security-policy"] == [b"frame-ancestors 'self'"]
    assert not [v for n, v in html if n == b"cache-control"]
    stream = secure_headers("/api/campaigns/1/stream", [(b"content-type", b"text/event-stream")])
    assert not [v for n, v in stream if n == b"cache-control"]
    empty = secure_headers("/api/brands/1", [])  # 204: nothing to sniff, but still never stored
    assert [v for n, v in empty if n == b"cache-control"] == [b"no-store"]
