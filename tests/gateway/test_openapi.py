"""Merging the services' OpenAPI documents."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

from litestar import Litestar, get, post
from litestar.openapi import OpenAPIConfig
from litestar.params import FromPath, JSONBody

from gateway.app import DOCS_ASSETS, own_route_handlers
from gateway.openapi import gateway_document, merge_openapi
from gateway.routes import DEFAULT_ROUTES, PUBLIC_PREFIXES, RouteTable
from libs.openapi import (
    OPERATOR_SECURITY,
    PROBLEM_REF,
    TOKEN_SECURITY,
    document_app,
    excluded_from_auth,
    problems,
    service_document,
)
from libs.security import PUBLIC, Role, requires
from services.auth.app import create_app as create_auth
from services.brand.app import create_app as create_brand
from services.campaign.app import create_app as create_campaign


def _doc(path: str, schema: dict[str, Any], name: str = "Item") -> dict[str, Any]:
    ref = {"$ref": f"#/components/schemas/{name}"}
    return {
        "openapi": "3.1.0",
        "info": {"title": "x", "version": "1"},
        "paths": {path: {"get": {"responses": {"200": {"content": {"application/json": {"schema": ref}}}}}}},
        "components": {"schemas": {name: schema, "Shared": {"type": "string"}}},
        "tags": [{"name": "things"}],
    }


def test_identical_components_merge_and_different_ones_are_renamed() -> None:
    auth = _doc("/api/auth/me", {"type": "object", "properties": {"a": {"type": "string"}}})
    brand = _doc("/api/brands", {"type": "object", "properties": {"b": {"type": "integer"}}})
    merged = merge_openapi({"brand": brand, "auth": auth})
    schemas = merged["components"]["schemas"]
    assert set(schemas) == {"Item", "Item_brand", "Shared"}
    assert schemas["Item"]["properties"] == {"a": {"type": "string"}}  # first service by name keeps the name
    brand_ref = merged["paths"]["/api/brands"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert brand_ref == {"$ref": "#/components/schemas/Item_brand"}
    auth_ref = merged["paths"]["/api/auth/me"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert auth_ref == {"$ref": "#/components/schemas/Item"}
    assert merged["tags"] == [{"name": "things"}]
    assert merged["x-upstreams"] == {"auth": "ok", "brand": "ok"}


def test_a_down_service_is_left_out_and_named() -> None:
    merged = merge_openapi({"auth": _doc("/api/auth/me", {"type": "object"}), "campaign": None})
    assert list(merged["paths"]) == ["/api/auth/me"]
    assert merged["x-upstreams"] == {"auth": "ok", "campaign": "down"}
    assert "campaign" in merged["info"]["description"]


# --- what each operation answers on error, and the gateway's own routes ------------------------

ERROR_CONTENT = {"application/problem+json"}


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, op)
        for path, item in document["paths"].items()
        for method, op in item.items()
        if isinstance(op, dict) and "responses" in op
    ]


def _errors(operation: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {int(code): answer for code, answer in operation["responses"].items() if int(code) >= 400}


@get("/things/{thing_id:uuid}", guards=[requires(Role.MEMBER)], responses=problems(409), sync_to_thread=False)
def change_thing(thing_id: FromPath[uuid.UUID]) -> dict[str, str]:
    """A guarded operation on one resource that may conflict."""
    return {}


@post("/open", opt=PUBLIC, sync_to_thread=False)
def open_door(data: JSONBody[dict[str, str]]) -> dict[str, str]:
    """A public operation with a body."""
    return data


@get("/plain", sync_to_thread=False)
def plain() -> dict[str, str]:
    """An authenticated operation without input."""
    return {}


def test_error_answers_are_problems_implied_by_each_operation_and_declared_by_its_handler() -> None:
    app = Litestar(route_handlers=[change_thing, open_door, plain], openapi_config=OpenAPIConfig("t", "1"))
    document = document_app(app, app.openapi_schema.to_schema(), public=excluded_from_auth(["^/plain-no$"]))
    ops = {path: op for path, _, op in _operations(document)}
    assert set(_errors(ops["/things/{thing_id}"])) == {400, 401, 403, 404, 409, 422}
    assert set(_errors(ops["/open"])) == {400, 413, 422}
    assert set(_errors(ops["/plain"])) == {401}
    for op in ops.values():
        for answer in _errors(op).values():
            assert set(answer["content"]) == ERROR_CONTENT
            assert answer["content"]["application/problem+json"]["schema"] == {"$ref": PROBLEM_REF}
    assert ops["/open"]["security"] == []
    assert ops["/plain"]["security"] == TOKEN_SECURITY
    assert "WWW-Authenticate" in ops["/plain"]["responses"]["401"]["headers"]
    assert document["components"]["schemas"]["ProblemDetails"]["required"] == [
        "type",
        "title",
        "status",
        "detail",
        "code",
    ]
    assert set(document["components"]["securitySchemes"]) >= {"accessToken", "apiKey"}


def test_every_service_documents_its_errors_as_problems_and_nothing_in_litestars_shape() -> None:
    for create in (create_auth, create_brand, create_campaign):
        document = service_document(create())
        assert "ProblemDetails" in document["components"]["schemas"]
        for path, method, op in _operations(document):
            assert "security" in op, (method, path)
            for code, answer in _errors(op).items():
                assert set(answer.get("content", {})) == ERROR_CONTENT, (method, path, code)
            if op["security"]:
                assert 401 in _errors(op), (method, path)
        assert "Validation Exception" not in json.dumps(document)


def test_no_content_answers_document_no_body() -> None:
    seen = 0
    for create in (create_auth, create_brand, create_campaign):
        for path, method, op in _operations(service_document(create())):
            if "204" in op["responses"]:
                seen += 1
                assert "content" not in op["responses"]["204"], (method, path)
    assert seen  # logout, deletions, ...


def test_the_lead_import_documents_its_multipart_form() -> None:
    document = service_document(create_campaign())
    body = document["paths"]["/api/leads/imports"]["post"]["requestBody"]
    form = body["content"]["multipart/form-data"]["schema"]
    expected = {"file", "mapping", "default_region", "delimiter", "unmapped", "consent_source", "check_mx"}
    assert set(form["properties"]) == expected
    assert form["required"] == ["file"]
    assert form["properties"]["file"]["format"] == "binary"
    assert form["properties"]["unmapped"]["enum"] == ["custom", "ignore"]
    answers = document["paths"]["/api/leads/imports"]["post"]["responses"]
    assert {"200", "202", "413", "422"} <= set(answers)
    export = document["paths"]["/api/suppressions/export"]["get"]["responses"]["200"]
    assert list(export["content"]) == ["text/csv; charset=utf-8"]


def _merged() -> dict[str, Any]:
    documents: dict[str, Mapping[str, Any] | None] = {
        "auth": service_document(create_auth()),
        "brand": service_document(create_brand()),
        "campaign": service_document(create_campaign()),
    }
    return merge_openapi(
        documents, own=gateway_document(own_route_handlers), routes=RouteTable(DEFAULT_ROUTES, PUBLIC_PREFIXES)
    )


def test_the_gateway_documents_its_own_routes_with_the_operators_under_their_tag() -> None:
    merged = _merged()
    paths = merged["paths"]
    stream = paths["/api/campaigns/{campaign_id}/stream"]["get"]
    assert list(stream["responses"]["200"]["content"]) == ["text/event-stream"]
    assert stream["security"] == TOKEN_SECURITY
    assert {"400", "401", "404"} <= set(stream["responses"])
    assert paths["/healthz"]["get"]["security"] == []
    assert set(_errors(paths["/readyz"]["get"])) == {503}
    for path in ("/api/ops/queues", "/api/ops/queues/stream", "/ops/login", "/ops/logout", "/metrics"):
        for op in paths[path].values():
            assert op["tags"] == ["operators"], path
    assert paths["/api/ops/queues"]["get"]["security"] == OPERATOR_SECURITY
    assert {"401", "403"} <= set(paths["/api/ops/queues"]["get"]["responses"])
    assert paths["/ops/login"]["post"]["requestBody"]["content"]["application/x-www-form-urlencoded"]
    assert "operators" in {tag["name"] for tag in merged["tags"]}
    # what the gateway answers itself: only for operations it forwards
    assert {"502", "503", "504"} <= set(paths["/api/brands"]["get"]["responses"])
    assert "502" not in paths["/api/ops/queues"]["get"]["responses"]
    for _, _, op in _operations(merged):
        for answer in _errors(op).values():
            if "content" in answer and "text/html" not in answer["content"]:
                assert set(answer["content"]) == ERROR_CONTENT


# Served by the gateway but deliberately not operations of the API: the document and docs page themselves.
UNDOCUMENTED = {"/api/openapi.json", "/api/docs", "/api/docs/init.js"}


def test_every_route_the_gateway_serves_itself_is_documented() -> None:
    app = Litestar(route_handlers=own_route_handlers(), openapi_config=None)
    documented = set(gateway_document(own_route_handlers)["paths"])
    mounts = {"/api/campaigns": "/api/campaigns/{campaign_id}/stream", "/ops/rq": "/ops/rq/"}
    for route in app.routes:
        path = route.path_format
        if path in UNDOCUMENTED or path.startswith(DOCS_ASSETS):
            continue
        assert mounts.get(path, path) in documented, f"{path} is served by the gateway but not documented"
