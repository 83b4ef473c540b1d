"""Every controller of the inbound part: Twilio callbacks and texts, inbound email, tracked links."""

from __future__ import annotations

from services.campaign.inbound.email.controllers import EmailHooksController
from services.campaign.inbound.links.controllers import LinksController
from services.campaign.inbound.twilio.controllers import TwilioHooksController

INBOUND_CONTROLLERS = [TwilioHooksController, EmailHooksController, LinksController]
"""Every controller of the inbound part, mounted by ``services.campaign.app``."""

__all__ = ["INBOUND_CONTROLLERS", "EmailHooksController", "LinksController", "TwilioHooksController"]
