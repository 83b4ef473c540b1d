"""Merging the services' OpenAPI documents."""

from __future__ import annotations

from typing import Any

from gateway.openapi import merge_openapi


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
