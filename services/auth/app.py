"""The auth service's Litestar app: wiring only."""

from __future__ import annotations

from typing import Any

from litestar import Litestar

from libs.app import create_service_app
from services.auth.settings import AuthSettings


def create_app(settings: AuthSettings | None = None, **overrides: Any) -> Litestar:
    """Build the auth service; ``overrides`` replace the database, Redis or verifier in tests."""
    settings = settings or AuthSettings()
    return create_service_app(
        name="auth",
        title="Tidewater auth service",
        settings=settings,
        route_handlers=[],
        **overrides,
    )
