"""The brand service's Litestar app: wiring only."""

from __future__ import annotations

from typing import Any

from litestar import Litestar
from litestar.di import Provide

from libs.app import create_service_app
from libs.crypto import SecretBox
from libs.deliverability import sending_domain
from libs.deliverability.dns_preflight import DnsConfig
from libs.settings import Environment
from services.brand import deliverability, oauth
from services.brand.controllers import CONTROLLERS
from services.brand.deps import provide_box, smtp_check_settings
from services.brand.service import SmtpCheckSettings
from services.brand.settings import BrandSettings


def create_app(
    settings: BrandSettings | None = None,
    *,
    smtp_check: SmtpCheckSettings | None = None,
    box: SecretBox | None = None,
    dns: DnsConfig | None = None,
    **overrides: Any,
) -> Litestar:
    """Build the brand service; ``overrides`` replace the database, Redis or verifier in tests.

    ``dns``: where the DNS preflight asks (readiness then checks DNS too); by default
    ``SDR_DNS_*`` say (readiness checks DNS in production only).
    """
    settings = settings or BrandSettings()
    dns_settings = sending_domain.DnsSettings()
    production = settings.env is Environment.PRODUCTION
    sending_domain.configure(
        dns or dns_settings.config(),
        in_readiness=dns is not None or dns_settings.in_readiness(production=production),
    )
    state = {
        "box": box or SecretBox.from_settings(settings),
        "smtp_check": smtp_check or smtp_check_settings(settings),
        "twilio_required": settings.twilio_required,
        "oauth_settings": oauth.OAuthSettings(),
        **overrides.pop("state", {}),
    }
    return create_service_app(
        name="brand",
        title="Tidewater brand service",
        settings=settings,
        route_handlers=[*CONTROLLERS, *deliverability.CONTROLLERS, *oauth.CONTROLLERS],
        dependencies={"box": Provide(provide_box), **overrides.pop("dependencies", {})},
        state=state,
        **overrides,
    )
