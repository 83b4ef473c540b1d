"""Route inventory of the inbound part: public routes are exactly the verified ones, the rest are guarded."""

from __future__ import annotations

from litestar.handlers import HTTPRouteHandler

from libs.app import create_service_app
from libs.settings import CommonSettings
from services.campaign.inbound.controllers import INBOUND_CONTROLLERS
from services.campaign.webhooks.controllers import WEBHOOK_CONTROLLERS

PUBLIC_PREFIXES = ("/hooks/twilio/", "/hooks/email/", "/u/", "/o/", "/c/")


def test_every_inbound_route_is_either_public_and_verified_or_guarded() -> None:
    app = create_service_app(
        name="campaign",
        title="t",
        settings=CommonSettings(),
        route_handlers=[*INBOUND_CONTROLLERS, *WEBHOOK_CONTROLLERS],
    )
    seen = 0
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            if not isinstance(handler, HTTPRouteHandler) or handler.http_methods == {"OPTIONS"}:
                continue
            public = handler.opt.get("exclude_from_auth") is True
            if route.path in ("/healthz", "/readyz") or route.path.startswith("/_schema"):
                continue
            seen += 1
            if route.path.startswith(PUBLIC_PREFIXES):
                assert public, route.path
            else:
                assert route.path.startswith("/api/webhooks"), route.path
                assert not public, route.path
                assert handler.resolve_guards(), route.path
    assert seen == 14
