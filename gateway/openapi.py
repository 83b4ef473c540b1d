"""Merge the services' OpenAPI documents into one for the whole public API."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

REF_PREFIX = "#/components/"


def _rewrite_refs(node: Any, renames: Mapping[str, str]) -> Any:
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value in renames:
                out[key] = renames[value]
            else:
                out[key] = _rewrite_refs(value, renames)
        return out
    if isinstance(node, list):
        return [_rewrite_refs(item, renames) for item in node]
    return node


def merge_openapi(
    documents: Mapping[str, Mapping[str, Any] | None], *, title: str = "Tidewater API", version: str = "1.0.0"
) -> dict[str, Any]:
    """Return one document holding every service's paths and components.

    A component that two services define identically appears once; one that differs keeps its
    name in the first service (in name order) and is renamed ``<Name>_<service>`` in the others,
    with that service's ``$ref`` pointers rewritten. A service whose document is None (down) is
    left out and listed under ``x-upstreams`` as ``down``.
    """
    merged: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": {},
        "components": {},
        "tags": [],
    }
    states: dict[str, str] = {}
    tag_names: set[str] = set()
    for service in sorted(documents):
        document = documents[service]
        if document is None:
            states[service] = "down"
            continue
        states[service] = "ok"
        merged["openapi"] = str(document.get("openapi", merged["openapi"]))
        components: Mapping[str, Mapping[str, Any]] = document.get("components") or {}
        renames: dict[str, str] = {}
        for section, items in components.items():
            target = merged["components"].setdefault(section, {})
            for name, value in items.items():
                if name in target and target[name] != value:
                    new = f"{name}_{service}"
                    suffix = 2
                    while new in target or new in items:
                        new, suffix = f"{name}_{service}{suffix}", suffix + 1
                    renames[f"{REF_PREFIX}{section}/{name}"] = f"{REF_PREFIX}{section}/{new}"
        document = _rewrite_refs(copy.deepcopy(dict(document)), renames)
        for section, items in (document.get("components") or {}).items():
            target = merged["components"].setdefault(section, {})
            for name, value in items.items():
                key = renames.get(f"{REF_PREFIX}{section}/{name}", f"{REF_PREFIX}{section}/{name}")
                target.setdefault(key.rsplit("/", 1)[1], value)
        for path, item in (document.get("paths") or {}).items():
            merged["paths"].setdefault(path, item)
        for tag in document.get("tags") or []:
            if isinstance(tag, dict) and tag.get("name") not in tag_names:
                tag_names.add(tag["name"])
                merged["tags"].append(tag)
    down = sorted(name for name, state in states.items() if state == "down")
    merged["info"]["description"] = "Every public endpoint of Tidewater, served through the gateway." + (
        f" Left out because their service is down: {', '.join(down)}." if down else ""
    )
    merged["x-upstreams"] = states
    merged["paths"] = dict(sorted(merged["paths"].items()))
    return merged
