"""Merge the services' OpenAPI documents and the gateway's own into one for the whole public API."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from litestar import Litestar
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin
from prometheus_client import CONTENT_TYPE_LATEST

from gateway.routes import RouteTable
from libs.app import OPENAPI_PATH
from libs.openapi import OPERATOR_SECURITY, TOKEN_SECURITY, document_app, problem_response

REF_PREFIX = "#/components/"
OPERATORS_TAG = "operators"
METRICS_TOKEN = "metricsToken"  # noqa: S105 (a security scheme's name)
EDGE_PROBLEMS = (502, 503, 504)
"""What the gateway itself may answer for any operation it forwards to a service."""
RATE_LIMITED_ROOT = "/api/"
RATE_LIMIT_PROBLEMS = (429,)
"""What the gateway answers for a forwarded ``/api/`` operation past its budget (with ``Retry-After``)."""

TAGS: dict[str, str] = {
    "auth": "Sign-up, login, sessions and the caller's identity.",
    "members": "Members of the organization and their roles.",
    "invites": "Invitations to join the organization.",
    "api-keys": "API keys (`Bearer twk_...`), exchanged by the gateway for access tokens.",
    "keys": "The token signing keys (JWKS).",
    "brands": "Brands: voice, value proposition, postal address, opt-out wording.",
    "senders": "A brand's senders: SMTP identities, SMS numbers, caller ids.",
    "credentials": "Provider credentials (stored encrypted).",
    "campaigns": "Campaigns, steps, enrollments, schedules, analytics and live streams.",
    "leads": "Leads, CSV imports and lead timelines.",
    "suppressions": "The suppression list.",
    "messages": "The message ledger.",
    "webhooks": "Customer webhooks and their deliveries.",
    "inbound": "Public inbound endpoints: provider callbacks, unsubscribe, open and click links.",
    OPERATORS_TAG: "Platform operators: sign-in, queues, actions, live streams, metrics.",
    "health": "Liveness and readiness of the gateway and everything behind it.",
}


def _sse(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "headers": {"Cache-Control": {"schema": {"type": "string", "const": "no-store"}}},
        "content": {
            "text/event-stream": {
                "schema": {
                    "type": "string",
                    "description": "Server-sent events (`event:` / `data:` JSON lines) until the client leaves.",
                }
            }
        },
    }


def _html(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"text/html": {"schema": {"type": "string"}}}}


def _redirect(description: str) -> dict[str, Any]:
    return {"description": description, "headers": {"Location": {"schema": {"type": "string"}}}}


def _operation(
    operation_id: str,
    summary: str,
    tag: str,
    responses: Mapping[str, Any],
    problems: Sequence[int],
    *,
    security: list[dict[str, list[str]]],
    parameters: Sequence[Mapping[str, Any]] = (),
    request_body: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "tags": [tag],
        "summary": summary,
        "operationId": operation_id,
        "responses": dict(responses),
        "security": security,
    }
    if parameters:
        operation["parameters"] = [dict(p) for p in parameters]
    if request_body is not None:
        operation["requestBody"] = dict(request_body)
    for status in problems:
        operation["responses"][str(status)] = problem_response(status)
    operation["responses"] = dict(sorted(operation["responses"].items()))
    return operation


def asgi_paths() -> dict[str, dict[str, Any]]:
    """The gateway's routes that Litestar cannot describe: streams, mounts and the operators' HTML forms."""
    campaign_id = {
        "name": "campaign_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "format": "uuid"},
    }
    metrics_security: list[dict[str, list[str]]] = [*OPERATOR_SECURITY, {METRICS_TOKEN: []}]
    login_form = {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "required": ["csrf", "email", "password"],
                    "properties": {
                        "csrf": {"type": "string", "description": "The hidden field of the form (also a cookie)."},
                        "email": {"type": "string", "maxLength": 1024},
                        "password": {"type": "string", "maxLength": 1024, "format": "password"},
                    },
                }
            }
        },
    }
    return {
        "/api/campaigns/{campaign_id}/stream": {
            "get": _operation(
                "StreamCampaign",
                "Live events of one campaign of the caller's organization (server-sent events).",
                "campaigns",
                {"200": _sse("A snapshot from the ledger every few seconds, and every live event as it happens.")},
                (400, 401, 404),
                security=TOKEN_SECURITY,
                parameters=[campaign_id],
            )
        },
        "/api/ops/queues/stream": {
            "get": _operation(
                "StreamOpsQueues",
                "A queue snapshot every second and every live event (server-sent events).",
                OPERATORS_TAG,
                {"200": _sse("Queue snapshots and live events.")},
                (401, 403),
                security=OPERATOR_SECURITY,
            )
        },
        "/ops/login": {
            "get": _operation(
                "ShowOperatorLogin",
                "The operator sign-in form (its CSRF token is a cookie and a hidden field).",
                OPERATORS_TAG,
                {"200": _html("The sign-in form.")},
                (),
                security=[],
            ),
            "post": _operation(
                "OperatorLogin",
                "Sign in as an operator; only an operator gets a session cookie.",
                OPERATORS_TAG,
                {
                    "303": _redirect("Signed in: the session cookies are set and the browser goes to the dashboard."),
                    "401": _html("The form again: unknown e-mail or password, or not an operator."),
                },
                (403, 422),
                security=[],
                request_body=login_form,
            ),
        },
        "/ops/logout": {
            "post": _operation(
                "OperatorLogout",
                "End the operator's browser session.",
                OPERATORS_TAG,
                {"303": _redirect("Signed out: back to the sign-in form.")},
                (401, 403),
                security=OPERATOR_SECURITY,
            )
        },
        "/ops/rq/": {
            "get": _operation(
                "ShowQueueDashboard",
                "The RQ dashboard (its pages and assets are under /ops/rq/).",
                OPERATORS_TAG,
                {"200": _html("The dashboard.")},
                (401, 403),
                security=OPERATOR_SECURITY,
            )
        },
        "/metrics": {
            "get": _operation(
                "GetMetrics",
                "Prometheus metrics (operators, or the bearer token in SDR_METRICS_TOKEN).",
                OPERATORS_TAG,
                {
                    "200": {
                        "description": "The metrics.",
                        "content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}},
                    }
                },
                (401, 403),
                security=metrics_security,
            )
        },
    }


def is_operator_path(path: str) -> bool:
    """Whether ``path`` belongs to the operators' tooling."""
    return path.startswith(("/api/ops/", "/ops/")) or path == "/metrics"


def _public(_: str, handler: HTTPRouteHandler) -> bool:
    return bool(handler.opt.get("exclude_from_auth"))


def _security(path: str, _: HTTPRouteHandler) -> list[dict[str, list[str]]]:
    return OPERATOR_SECURITY if is_operator_path(path) else TOKEN_SECURITY


def gateway_document(route_handlers: Callable[[], Sequence[Any]]) -> dict[str, Any]:
    """The OpenAPI document of the gateway's own routes, built from a fresh set of its route handlers."""
    app = Litestar(
        route_handlers=list(route_handlers()),
        openapi_config=OpenAPIConfig(
            title="Tidewater gateway", version="1.0.0", path=OPENAPI_PATH, render_plugins=[JsonRenderPlugin()]
        ),
    )
    document = document_app(app, app.openapi_schema.to_schema(), public=_public, security=_security)
    paths: dict[str, Any] = document.setdefault("paths", {})
    for path, item in asgi_paths().items():
        paths.setdefault(path, {}).update({m: op for m, op in item.items() if m not in paths.get(path, {})})
    for path, item in paths.items():
        if is_operator_path(path):
            for operation in item.values():
                if isinstance(operation, dict) and "responses" in operation:
                    operation["tags"] = [OPERATORS_TAG]
    document["components"].setdefault("securitySchemes", {})[METRICS_TOKEN] = {
        "type": "http",
        "scheme": "bearer",
        "description": "The token in SDR_METRICS_TOKEN (for a Prometheus scraper).",
    }
    return document


def document_edge(merged: dict[str, Any], routes: RouteTable) -> None:
    """Add what the gateway answers for forwarded operations: 401 (no token), 429 (budgets, /api/), 502-504."""
    for path, item in merged["paths"].items():
        route = routes.match(path)
        if route is None:
            continue
        for operation in item.values():
            if not (isinstance(operation, dict) and "responses" in operation):
                continue
            responses = operation["responses"]
            if route.needs_token and "401" not in responses:
                responses["401"] = problem_response(401)
                operation["security"] = copy.deepcopy(TOKEN_SECURITY)
            edge = (*RATE_LIMIT_PROBLEMS, *EDGE_PROBLEMS) if path.startswith(RATE_LIMITED_ROOT) else EDGE_PROBLEMS
            for status in edge:
                responses.setdefault(str(status), problem_response(status))
            operation["responses"] = dict(sorted(responses.items()))


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
    documents: Mapping[str, Mapping[str, Any] | None],
    *,
    own: Mapping[str, Any] | None = None,
    routes: RouteTable | None = None,
    title: str = "Tidewater API",
    version: str = "1.0.0",
) -> dict[str, Any]:
    """Return one document holding every service's paths and components, and the gateway's own (``own``).

    A component that two services define identically appears once; one that differs keeps its
    name in the first service (in name order, the gateway last) and is renamed
    ``<Name>_<service>`` in the others, with that service's ``$ref`` pointers rewritten. A service
    whose document is None (down) is left out and listed under ``x-upstreams`` as ``down``. With
    ``routes``, forwarded operations also get the problems the gateway itself answers.
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
    sources: list[tuple[str, Mapping[str, Any] | None]] = [(name, documents[name]) for name in sorted(documents)]
    if own is not None:
        sources.append(("gateway", own))
    for service, document in sources:
        if document is None:
            states[service] = "down"
            continue
        if service in documents:
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
    if routes is not None:
        document_edge(merged, routes)
    used: set[str] = set()
    for item in merged["paths"].values():
        for operation in item.values():
            if isinstance(operation, dict):
                used.update(operation.get("tags") or [])
    for name in sorted(used):
        if name not in tag_names:
            tag_names.add(name)
            merged["tags"].append({"name": name, **({"description": TAGS[name]} if name in TAGS else {})})
    return merged
