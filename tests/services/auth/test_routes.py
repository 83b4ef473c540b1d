"""Every route is either public by intent or guarded; the public ones are those of the contract."""

from __future__ import annotations

from litestar import Litestar
from litestar.handlers import HTTPRouteHandler

PUBLIC_ROUTES = {
    "/healthz",
    "/readyz",
    "/api/auth/signup",
    "/api/auth/login",
    "/api/auth/refresh",
    "/api/auth/logout",
    "/api/auth/jwks.json",
    "/api/auth/invites/accept",
    "/api/auth/api-keys/exchange",
    "/api/auth/sso",
    "/api/auth/sso/start",
    "/api/auth/sso/callback",
}


def test_every_route_is_public_or_guarded(app: Litestar) -> None:
    public = set()
    for route in app.routes:
        for handler in getattr(route, "route_handlers", ()):
            if (
                not isinstance(handler, HTTPRouteHandler)
                or route.path.startswith("/_schema")
                or handler.http_methods == {"OPTIONS"}
            ):
                continue
            if handler.opt.get("exclude_from_auth"):
                public.add(route.path)
            else:
                assert handler.resolve_guards(), f"{route.path} has neither a guard nor opt=PUBLIC"
    assert public == PUBLIC_ROUTES


def test_openapi_documents_every_auth_operation(app: Litestar) -> None:
    from litestar.testing import TestClient

    with TestClient(app) as client:
        schema = client.get("/_schema/openapi.json").json()
    operation_ids = {op["operationId"] for path in schema["paths"].values() for op in path.values()}
    assert {"SignUp", "LogIn", "RefreshSession", "ExchangeApiKey", "GetJwks", "RotateSigningKey"} <= operation_ids
