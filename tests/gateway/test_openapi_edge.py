"""The merged document names what the edge itself answers: 429 from the request budgets, 502-504."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.app import own_route_handlers
from gateway.openapi import gateway_document, merge_openapi
from gateway.routes import DEFAULT_ROUTES, PUBLIC_PREFIXES, RouteTable
from libs.openapi import service_document
from services.auth.app import create_app as create_auth
from services.brand.app import create_app as create_brand
from services.campaign.app import create_app as create_campaign
from tests.gateway.test_ratelimit import _settings, bearer, edge
from tests.support.tokens import TokenSigner

ROUTES = RouteTable(DEFAULT_ROUTES, PUBLIC_PREFIXES)


def _merged() -> dict[str, Any]:
    documents: dict[str, Mapping[str, Any] | None] = {
        "auth": service_document(create_auth()),
        "brand": service_document(create_brand()),
        "campaign": service_document(create_campaign()),
    }
    return merge_openapi(documents, own=gateway_document(own_route_handlers), routes=ROUTES)


def _operations(merged: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, op)
        for path, item in merged["paths"].items()
        for method, op in item.items()
        if isinstance(op, dict) and "responses" in op
    ]


def test_every_forwarded_api_operation_documents_the_429_with_retry_after() -> None:
    merged = _merged()
    forwarded = [(p, m, op) for p, m, op in _operations(merged) if ROUTES.match(p) is not None]
    api = [(p, m, op) for p, m, op in forwarded if p.startswith("/api/")]
    assert len(api) > 80
    for path, method, op in api:
        answer = op["responses"].get("429")
        assert answer is not None, f"{method.upper()} {path}"
        assert "Retry-After" in answer["headers"], f"{method.upper()} {path}"
        assert list(answer["content"]) == ["application/problem+json"]
        assert {"502", "503", "504"} <= set(op["responses"])
    # Outside /api/ (provider callbacks, links in mail) no budget applies, but the gateway still forwards.
    hooks = [op for p, _, op in forwarded if not p.startswith("/api/")]
    assert hooks
    assert all({"502", "503", "504"} <= set(op["responses"]) for op in hooks)
    # The gateway's own routes are not budgeted.
    assert "429" not in merged["paths"]["/api/ops/queues"]["get"]["responses"]


def test_a_real_429_answer_is_the_documented_one(signer: TokenSigner, redis_url: str) -> None:
    documented = _merged()["paths"]["/api/brands"]["get"]["responses"]["429"]
    auth = bearer(signer)
    with edge(signer, _settings(redis_url, rate_limit_org_read=1)) as e:
        assert e.client.get("/api/brands", headers=auth).status_code == 200
        refused = e.client.get("/api/brands", headers=auth)
    assert refused.status_code == 429
    assert refused.headers["content-type"] in documented["content"]
    for name in documented["headers"]:
        assert int(refused.headers[name]) >= 1
    assert refused.json()["status"] == 429
    assert refused.headers["cache-control"] == "no-store"
