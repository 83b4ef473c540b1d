"""Document what every operation really answers on error (RFC 9457 problems) and which need a token.

Litestar documents 4xx answers in its own ``ValidationException`` shape, but every box renders
errors with :mod:`libs.errors` as ``application/problem+json``. :func:`document_app` rewrites a
generated document from the app's route handlers: each operation gets the problem answers that
its shape implies (400/422 when it takes input, 401 unless public, 403 when guarded, 404 when it
names a resource, 413 when it takes a body), the ones its handler declares with
``responses=problems(...)``, and a ``security`` requirement (empty when public).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from litestar import Litestar, Request
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.openapi.spec import Operation
from litestar.routes import HTTPRoute

from libs.errors import PROBLEM_BASE, PROBLEM_JSON

PROBLEM_SCHEMA = "ProblemDetails"
FIELD_ERROR_SCHEMA = "FieldError"
PROBLEM_REF = f"#/components/schemas/{PROBLEM_SCHEMA}"
ACCESS_TOKEN = "accessToken"  # noqa: S105 (a scheme name, not a secret)
API_KEY = "apiKey"
OPERATOR_SESSION = "operatorSession"
TOKEN_SECURITY: list[dict[str, list[str]]] = [{ACCESS_TOKEN: []}, {API_KEY: []}]
"""An access token, or an API key the gateway exchanges for one."""
OPERATOR_SECURITY: list[dict[str, list[str]]] = [{ACCESS_TOKEN: []}, {OPERATOR_SESSION: []}]
"""An operator's access token, or the operator console's session cookie."""

PROBLEM_DESCRIPTIONS: dict[int, str] = {
    400: "The request cannot be parsed (malformed JSON or form, a bad header or path value).",
    401: "No valid access token or API key was presented.",
    403: "The caller's role, key scope or organization does not allow this.",
    404: "No such resource for this caller.",
    409: "The request conflicts with the resource's current state.",
    412: "`If-Match` does not name the current version.",
    413: "The body is larger than this route accepts.",
    422: "A field is invalid; `errors[]` names each one.",
    428: "`If-Match` is required for this change.",
    429: "Too many requests; `Retry-After` says how many seconds to wait.",
    502: "The service behind the gateway answered with something that is not HTTP.",
    503: "A service or dependency is down; try again later.",
    504: "The service behind the gateway did not answer in time.",
}
"""What each problem status means, for statuses an operation does not describe itself."""

_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"description": "`Bearer`", "schema": {"type": "string"}}},
    429: {"Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "string"}}},
}


def problem_components() -> dict[str, dict[str, Any]]:
    """The ``ProblemDetails`` and ``FieldError`` component schemas every error answer refers to."""
    return {
        PROBLEM_SCHEMA: {
            "type": "object",
            "description": "An RFC 9457 problem. Some problems add members of their own (e.g. `checks`).",
            "required": ["type", "title", "status", "detail", "code"],
            "properties": {
                "type": {"type": "string", "format": "uri", "description": "A URL naming the kind of problem."},
                "title": {"type": "string"},
                "status": {"type": "integer", "minimum": 400, "maximum": 599},
                "detail": {"type": "string"},
                "code": {"type": "string", "description": "Stable machine-readable code, e.g. `NotFound`."},
                "instance": {"type": "string", "description": "The path of the request."},
                "request_id": {"type": "string", "description": "The request's `X-Request-ID`."},
                "errors": {"type": "array", "items": {"$ref": f"#/components/schemas/{FIELD_ERROR_SCHEMA}"}},
            },
            "additionalProperties": True,
        },
        FIELD_ERROR_SCHEMA: {
            "type": "object",
            "description": "One field at fault.",
            "required": ["field", "message"],
            "properties": {
                "field": {"type": "string", "description": "The field at fault, e.g. `email`."},
                "message": {"type": "string"},
                "source": {"type": "string", "description": "Where the field was: body, query, path, header."},
            },
            "additionalProperties": True,
        },
    }


def security_schemes() -> dict[str, dict[str, Any]]:
    """The ways to authenticate: an access token, an API key, or an operator session cookie."""
    return {
        ACCESS_TOKEN: {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "A 15-minute EdDSA access token from sign-up, login or refresh.",
        },
        API_KEY: {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "twk_...",
            "description": "An API key (`Bearer twk_...`); the gateway exchanges it for an access token.",
        },
        OPERATOR_SESSION: {
            "type": "apiKey",
            "in": "cookie",
            "name": "tw_ops",
            "description": "The operator console's session (from `POST /ops/login`); changes also need `X-CSRFToken`.",
        },
    }


_CODES: dict[int, str] = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    409: "Conflict",
    412: "PreconditionFailed",
    413: "PayloadTooLarge",
    422: "Invalid",
    428: "PreconditionRequired",
    429: "TooManyRequests",
    502: "BadGateway",
    503: "Unavailable",
    504: "UpstreamTimeout",
}


def _example(status: int, description: str) -> dict[str, Any]:
    code = _CODES.get(status, "Error")
    slug = "".join("-" + c.lower() if c.isupper() and i else c.lower() for i, c in enumerate(code))
    example: dict[str, Any] = {
        "type": PROBLEM_BASE + slug,
        "title": "Invalid request" if status == 422 else HTTPStatus(status).phrase,
        "status": status,
        "detail": description.split(";")[0].rstrip(".").replace("`", ""),
        "code": code,
        "instance": "/api/...",
        "request_id": "0d9c4f5e8a7b4c3d9e2f1a0b6c5d4e3f",
    }
    if status == 422:
        example["errors"] = [{"field": "email", "message": "value is not a valid email address", "source": "body"}]
    return example


def problem_response(status: int, description: str | None = None) -> dict[str, Any]:
    """An OpenAPI response object: a problem with ``status`` under ``application/problem+json``."""
    text = description or PROBLEM_DESCRIPTIONS.get(status) or HTTPStatus(status).phrase
    response: dict[str, Any] = {
        "description": text,
        "content": {PROBLEM_JSON: {"schema": {"$ref": PROBLEM_REF}, "example": _example(status, text)}},
    }
    if status in _HEADERS:
        response["headers"] = copy.deepcopy(_HEADERS[status])
    return response


def problems(*statuses: int, **descriptions: str) -> dict[int, ResponseSpec]:
    """``responses=`` for a handler: the problem statuses it raises beyond those its shape implies.

    ``descriptions`` say what a status means for this operation, keyed ``s409="..."``.
    """
    out: dict[int, ResponseSpec] = {}
    for status in statuses:
        text = descriptions.get(f"s{status}") or PROBLEM_DESCRIPTIONS.get(status) or HTTPStatus(status).phrase
        out[status] = ResponseSpec(data_container=None, description=text, media_type=PROBLEM_JSON)
    return out


def with_request_body(body: Mapping[str, Any]) -> type[Operation]:
    """``operation_class=`` for a handler that reads its body itself (a streamed upload): document ``body``."""
    raw = dict(body)

    @dataclass
    class OperationWithBody(Operation):
        def to_schema(self) -> dict[str, Any]:
            schema = super().to_schema()
            schema["requestBody"] = copy.deepcopy(raw)
            return schema

    return OperationWithBody


def multipart_body(
    fields: Mapping[str, Mapping[str, Any]], *, required: Sequence[str] = ("file",), description: str = ""
) -> dict[str, Any]:
    """A ``multipart/form-data`` request body with the given form fields (``file`` is the upload)."""
    schema: dict[str, Any] = {"type": "object", "properties": dict(fields), "required": list(required)}
    encoding = {"file": {"contentType": "text/csv, text/plain, application/octet-stream"}} if "file" in fields else {}
    body: dict[str, Any] = {
        "required": True,
        "content": {"multipart/form-data": {"schema": schema, **({"encoding": encoding} if encoding else {})}},
    }
    if description:
        body["description"] = description
    return body


def _is_error(code: str) -> bool:
    return code.isdigit() and int(code) >= 400


def document_operation(
    operation: dict[str, Any],
    *,
    path: str,
    method: str,
    public: bool,
    guarded: bool,
    declared: Mapping[int, str] | None = None,
    security: list[dict[str, list[str]]] | None = None,
) -> None:
    """Replace ``operation``'s error answers with the problems it can give, and set its security."""
    responses: dict[str, Any] = operation.setdefault("responses", {})
    for code in [c for c in responses if _is_error(c)]:
        del responses[code]
    if "204" in responses:  # No Content has no body, whatever the handler's Response[None] suggests
        responses["204"].pop("content", None)
    takes_input = bool(operation.get("parameters")) or "requestBody" in operation or "{" in path
    statuses: dict[int, str | None] = {}
    if takes_input:
        statuses[400] = None
        statuses[422] = None
    if not public:
        statuses[401] = None
    if guarded:
        statuses[403] = None
    if "{" in path:
        statuses[404] = None
    if "requestBody" in operation:
        statuses[413] = None
    statuses.update(declared or {})
    for status in sorted(statuses):
        responses[str(status)] = problem_response(status, statuses[status])
    operation["responses"] = dict(sorted(responses.items()))
    operation["security"] = [] if public else copy.deepcopy(security or TOKEN_SECURITY)


def _declared(handler: HTTPRouteHandler) -> dict[int, str]:
    return {
        int(status): spec.description
        for status, spec in (handler.responses or {}).items()
        if int(status) >= 400 and spec.description != "Additional response"
    }


def document_app(
    app: Litestar,
    schema: Mapping[str, Any],
    *,
    public: Callable[[str, HTTPRouteHandler], bool],
    security: Callable[[str, HTTPRouteHandler], list[dict[str, list[str]]]] | None = None,
) -> dict[str, Any]:
    """Return ``schema`` (``app``'s generated document) with problem answers and security on every operation."""
    document = copy.deepcopy(dict(schema))
    components = document.setdefault("components", {})
    components.setdefault("schemas", {}).update(problem_components())
    components.setdefault("securitySchemes", {}).update(security_schemes())
    paths: dict[str, Any] = document.setdefault("paths", {})
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        item = paths.get(route.path_format or "/")
        if item is None:
            continue
        for handler in route.route_handlers:
            if not handler.resolve_include_in_schema():
                continue
            path = route.path_format or "/"
            is_public = public(path, handler)
            for method in handler.http_methods:
                operation = item.get(method.lower())
                if isinstance(operation, dict):
                    document_operation(
                        operation,
                        path=path,
                        method=method.lower(),
                        public=is_public,
                        guarded=bool(handler.resolve_guards()) and not is_public,
                        declared=_declared(handler),
                        security=security(path, handler) if security else None,
                    )
    return document


def excluded_from_auth(patterns: Iterable[str]) -> Callable[[str, HTTPRouteHandler], bool]:
    """``public=`` for :func:`document_app`: handlers marked public, or paths the auth middleware skips."""
    compiled = [re.compile(p) for p in patterns]

    def public(path: str, handler: HTTPRouteHandler) -> bool:
        return bool(handler.opt.get("exclude_from_auth")) or any(p.search(path) for p in compiled)

    return public


class ServiceDocumentPlugin(JsonRenderPlugin):
    """Serve the service's OpenAPI document as JSON, with its problems and security documented."""

    def __init__(self, *, auth_exclude: Iterable[str] = ()) -> None:
        super().__init__()
        self.public = excluded_from_auth(auth_exclude)
        self._documents: dict[int, dict[str, Any]] = {}

    def document(self, app: Litestar) -> dict[str, Any]:
        """The full document of ``app`` (built once per app)."""
        key = id(app)
        if key not in self._documents:
            self._documents[key] = document_app(app, app.openapi_schema.to_schema(), public=self.public)
        return self._documents[key]

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        """Render the documented schema of the request's app."""
        return self.render_json(request, self.document(request.app))


def service_document(app: Litestar) -> dict[str, Any]:
    """The document a service serves at ``/_schema/openapi.json`` (without a request)."""
    for plugin in app.openapi_config.render_plugins if app.openapi_config else ():
        if isinstance(plugin, ServiceDocumentPlugin):
            return plugin.document(app)
    return app.openapi_schema.to_schema()
