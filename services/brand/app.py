"""The brand service's Litestar app: wiring only."""

from __future__ import annotations

from typing import Any

from litestar import Litestar

from libs.app import create_service_app
from services.brand.settings import BrandSettings


def create_app(settings: BrandSettings | None = None, **overrides: Any) -> Litestar:
    """Build the brand service; ``overrides`` replace the database, Redis or verifier in tests."""
    settings = settings or BrandSettings()
    return create_service_app(
        name="brand",
        title="Tidewater brand service",
        settings=settings,
        route_handlers=[],
        **overrides,
    )
