"""One permission audit of the whole system: every route of every app is guarded or public by intent.

Every app is built as it runs (``gateway.app:create_app`` and each ``services/*/app.py:create_app``
found on disk, so a new service is audited without touching this file). A route handler
passes when it, its controller, router or app has a guard, or when its ``opt`` says
``exclude_from_auth`` (``opt=PUBLIC``). Only Litestar's own handlers are exempt: the OPTIONS
answer it adds to every path and the OpenAPI schema routes. Every guarded route of the
services must also answer 401 to a request without a token, and declare the scope area an
API key needs for it (``libs.scopes``: an area, ``ANY_TOKEN`` or ``PEOPLE_ONLY``).
"""

from __future__ import annotations

import importlib
import typing
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from gateway.app import create_app as create_gateway
from gateway.settings import GatewaySettings
from libs.scopes import SCOPE_AREA, Area, is_declared, required_scope, scope_area
from libs.settings import CommonSettings, Environment
from tests.conftest import ROOT

SERVICES = sorted(p.parent.name for p in (ROOT / "services").glob("*/app.py"))
"""Every service with an app, found on disk."""


def _settings_class(factory: Callable[..., Any]) -> type[CommonSettings]:
    """The settings class a ``create_app(settings: XSettings | None = None, ...)`` takes."""
    hint = typing.get_type_hints(factory)["settings"]
    (cls,) = [arg for arg in typing.get_args(hint) if arg is not type(None)]
    assert issubclass(cls, CommonSettings)
    return cls


def build_service(name: str, **settings: Any) -> Litestar:
    """Build ``services/<name>/app.py:create_app`` with test settings."""
    factory = importlib.import_module(f"services.{name}.app").create_app
    app = factory(_settings_class(factory)(env=Environment.TEST, **settings))
    assert isinstance(app, Litestar)
    return app


def build_all() -> dict[str, Litestar]:
    """The gateway's own Litestar app and every service app."""
    gateway = create_gateway(GatewaySettings(env=Environment.TEST))
    return {"gateway": gateway.app, **{name: build_service(name) for name in SERVICES}}


def _is_framework(app: Litestar, path: str, handler: Any) -> bool:
    """Litestar's own handlers: the OPTIONS answer added to each path, and the OpenAPI schema routes."""
    module = getattr(getattr(handler, "fn", None), "__module__", "") or ""
    if set(getattr(handler, "http_methods", ())) == {"OPTIONS"} and module == "litestar.routes.http":
        return True
    schema = (app.openapi_config.path or "/schema") if app.openapi_config is not None else None  # Litestar's default
    return bool(schema and path.startswith(schema) and module.startswith(("litestar._openapi", "litestar.openapi")))


def is_public(handler: Any) -> bool:
    """The handler says anyone may call it (``opt=PUBLIC``)."""
    return handler.opt.get("exclude_from_auth") is True


def handlers(app: Litestar) -> Iterator[tuple[str, str, Any]]:
    """Every ``(method, path, handler)`` of ``app`` that the audit covers (``ASGI`` for mounts)."""
    for path, by_method in app.route_handler_method_map.items():
        for method, handler in by_method.items():
            if not _is_framework(app, path, handler):
                yield method.upper(), path, handler


def test_every_app_is_built_and_audited() -> None:
    assert {"auth", "brand", "campaign"} <= set(SERVICES)
    apps = build_all()
    counts = {name: sum(1 for _ in handlers(app)) for name, app in apps.items()}
    assert all(count >= 5 for count in counts.values()), counts


def test_every_route_handler_is_guarded_or_explicitly_public() -> None:
    offending = []
    for name, app in build_all().items():
        for method, path, handler in handlers(app):
            if not is_public(handler) and not handler.resolve_guards():
                offending.append(f"{name}: {method} {path}")
    for line in offending:
        print(f"unguarded route: {line}")
    assert offending == [], "routes with neither a guard nor opt=PUBLIC:\n" + "\n".join(offending)


def test_the_audit_catches_a_route_without_a_guard() -> None:
    from litestar import get

    @get("/api/forgotten", sync_to_thread=False)
    def forgotten() -> str:
        return "oops"

    @get("/api/open", opt={"exclude_from_auth": True}, sync_to_thread=False)
    def open_route() -> str:
        return "ok"

    app = Litestar(route_handlers=[forgotten, open_route])
    found = [(m, p) for m, p, h in handlers(app) if not is_public(h) and not h.resolve_guards()]
    assert found == [("GET", "/api/forgotten")]


def undeclared(app: Litestar) -> list[tuple[str, str]]:
    """Every authenticated route of ``app`` that declares no scope area."""
    return [(m, p) for m, p, h in handlers(app) if not is_public(h) and not is_declared(h.opt)]


def test_every_authenticated_route_of_a_service_declares_the_scope_api_keys_need() -> None:
    offending = [f"{name}: {m} {p}" for name in SERVICES for m, p in undeclared(build_service(name))]
    assert offending == [], (
        "routes without a scope area (controller or handler opt=scope_area(Area.X), ANY_TOKEN or PEOPLE_ONLY):\n"
        + "\n".join(offending)
    )


def test_the_audit_catches_a_route_without_a_scope_area() -> None:
    from litestar import Controller, get, post

    from libs.security import Role, requires

    class Things(Controller):
        path = "/api/things"
        guards = [requires(Role.VIEWER)]
        opt = scope_area(Area.LEADS)

        @get("/", sync_to_thread=False)
        def list_things(self) -> str:
            return "ok"

        @post("/", sync_to_thread=False)
        def add_thing(self) -> str:
            return "ok"

    @get("/api/forgotten", guards=[requires(Role.VIEWER)], sync_to_thread=False)
    def forgotten() -> str:
        return "oops"

    @get("/api/typo", guards=[requires(Role.VIEWER)], opt={SCOPE_AREA: "lead"}, sync_to_thread=False)
    def typo() -> str:
        return "oops"

    app = Litestar(route_handlers=[Things, forgotten, typo])
    assert sorted(undeclared(app)) == [("GET", "/api/forgotten"), ("GET", "/api/typo")]
    needed = {(m, p): required_scope(h.opt, m) for m, p, h in handlers(app) if p == "/api/things"}
    assert needed == {("GET", "/api/things"): "leads:read", ("POST", "/api/things"): "leads:write"}


PUBLIC_PREFIXES = (
    "/healthz",
    "/readyz",
    "/api/auth/signup",
    "/api/auth/login",
    "/api/auth/refresh",
    "/api/auth/logout",
    "/api/auth/jwks.json",
    "/api/auth/invites/accept",
    "/api/auth/sso",
    "/api/auth/api-keys/exchange",
    "/hooks/",
    "/u/",
    "/o/",
    "/c/",
    "/api/openapi.json",
    "/api/docs",
)
"""The paths anyone may call, written out here on purpose: a route that turns public must be added by hand."""
SELF_AUTHENTICATED = {
    ("gateway", "/ops/login"): "the operators' sign-in form",
    ("gateway", "/metrics"): "checks an operator session or the metrics token itself",
    ("gateway", "/api/campaigns"): "the campaign stream mount verifies the customer's token itself",
}
"""Public to Litestar because the handler authenticates on its own."""
WEB_CLIENT = {("gateway", "/"), ("gateway", "/{path:path}")}
"""The web client's files (gateway/web.py): public pages that hold no data; they call the API with a token."""


def _under(path: str, prefix: str) -> bool:
    return path == prefix.rstrip("/") or path.startswith(prefix.rstrip("/") + "/")


def test_the_public_routes_are_those_of_the_contract() -> None:
    unexpected = []
    for name, app in build_all().items():
        for method, path, handler in handlers(app):
            contract = any(_under(path, prefix) for prefix in PUBLIC_PREFIXES)
            if is_public(handler) and not contract and (name, path) not in SELF_AUTHENTICATED.keys() | WEB_CLIENT:
                unexpected.append(f"{name}: {method} {path}")
    assert unexpected == [], "public routes outside the contract's public prefixes:\n" + "\n".join(unexpected)


def _fill(path: str) -> str:
    """``path`` with every parameter replaced by a dummy of its type (a fresh UUID for ids)."""
    parts = []
    for segment in path.split("/"):
        if segment.startswith("{") and segment.endswith("}"):
            kind = segment[1:-1].partition(":")[2]
            parts.append({"uuid": str(uuid.uuid4()), "int": "1"}.get(kind, "x"))
        else:
            parts.append(segment)
    return "/".join(parts)


@pytest.mark.parametrize("name", SERVICES)
def test_every_guarded_route_of_a_service_refuses_a_request_without_a_token(
    name: str, database_url: str, redis_url: str, tmp_path: Path
) -> None:
    app = build_service(name, database_url=database_url, redis_url=redis_url, data_dir=tmp_path)
    guarded = [(m, p) for m, p, h in handlers(app) if not is_public(h)]
    assert guarded
    wrong = []
    with TestClient(app) as client:
        for method, path in guarded:
            r = client.request("GET" if method == "ASGI" else method, _fill(path))
            if r.status_code != 401:
                wrong.append(f"{method} {path} -> {r.status_code}")
            elif method != "HEAD":
                assert r.headers["content-type"].startswith("application/problem+json"), (method, path)
    assert wrong == [], "guarded routes that did not answer 401 without a token:\n" + "\n".join(wrong)
