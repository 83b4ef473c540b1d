"""The campaign service's Litestar app: wiring only."""

from __future__ import annotations

from typing import Any

from litestar import Litestar

from libs.app import create_service_app
from services.campaign.campaigns.controllers import CONTROLLERS as CAMPAIGN_CONTROLLERS
from services.campaign.leads.controllers import CONTROLLERS as LEAD_CONTROLLERS
from services.campaign.settings import CampaignSettings


def create_app(settings: CampaignSettings | None = None, **overrides: Any) -> Litestar:
    """Build the campaign service; ``overrides`` replace the database, Redis or verifier in tests."""
    settings = settings or CampaignSettings()
    return create_service_app(
        name="campaign",
        title="Tidewater campaign service",
        settings=settings,
        route_handlers=[*CAMPAIGN_CONTROLLERS, *LEAD_CONTROLLERS],
        **overrides,
    )
