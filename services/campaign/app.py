"""The campaign service's Litestar app: wiring only."""

from __future__ import annotations

from typing import Any

from litestar import Litestar

from libs.app import create_service_app
from services.campaign.campaigns.brand_client import BrandClient
from services.campaign.campaigns.controllers import CONTROLLERS as CAMPAIGN_CONTROLLERS
from services.campaign.campaigns.review import REVIEW_CONTROLLERS
from services.campaign.conversations.controllers import CONVERSATION_CONTROLLERS
from services.campaign.inbound.controllers import INBOUND_CONTROLLERS
from services.campaign.keys import suppression_key
from services.campaign.leads.controllers import CONTROLLERS as LEAD_CONTROLLERS
from services.campaign.settings import CampaignSettings
from services.campaign.webhooks.controllers import WEBHOOK_CONTROLLERS


def create_app(
    settings: CampaignSettings | None = None, *, brand_client: BrandClient | None = None, **overrides: Any
) -> Litestar:
    """Build the campaign service; ``overrides`` replace the database, Redis or verifier in tests.

    ``brand_client`` replaces the HTTP client of the brand service (tests pass one over an
    in-process transport).
    """
    settings = settings or CampaignSettings()
    state = {
        "brand_client": brand_client or BrandClient(settings.brand_url, timeout=settings.brand_timeout),
        **overrides.pop("state", {}),
    }

    async def load_suppression_key(app: Litestar) -> None:  # at startup: a key that cannot be opened fails fast
        await suppression_key(app.state)

    return create_service_app(
        name="campaign",
        title="Tidewater campaign service",
        settings=settings,
        route_handlers=[
            *CAMPAIGN_CONTROLLERS,
            *REVIEW_CONTROLLERS,
            *CONVERSATION_CONTROLLERS,
            *LEAD_CONTROLLERS,
            *INBOUND_CONTROLLERS,
            *WEBHOOK_CONTROLLERS,
        ],
        state=state,
        on_startup=[load_suppression_key],
        **overrides,
    )
