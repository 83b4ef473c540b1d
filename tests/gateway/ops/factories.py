"""Rows the ops tests need: an organization with a brand, a campaign, leads, enrollments and ledger rows."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from libs.db.base import utcnow
from libs.db.models.brand import Brand
from libs.db.models.campaign import Campaign, CampaignStep, Enrollment, Message
from libs.db.models.leads import Lead
from libs.db.models.tenancy import Organization
from libs.db.session import system_session


@dataclass
class Seeded:
    """What :func:`seed_campaign` created."""

    org_id: uuid.UUID
    campaign_id: uuid.UUID
    step_id: uuid.UUID
    message_ids: list[uuid.UUID] = field(default_factory=list)
    enrollment_ids: list[uuid.UUID] = field(default_factory=list)
    lead_ids: list[uuid.UUID] = field(default_factory=list)


def seed_campaign(
    engine: Engine,
    *,
    org_id: uuid.UUID | None = None,
    statuses: list[str] | None = None,
    campaign_status: str = "active",
    channel: str = "email",
    hold_reason: str | None = None,
    sent_at: datetime | None = None,
    steps: int = 1,
    send_window: dict[str, Any] | None = None,
) -> Seeded:
    """Create an organization (unless given), a brand, an active campaign of ``steps`` steps (one hour apart)
    and one message of the first step per status, each for its own lead and enrollment."""
    statuses = statuses if statuses is not None else ["queued"]
    with system_session(engine) as session:
        if org_id is None:
            org = Organization(name="Acme")
            session.add(org)
            session.flush()
            org_id = org.id
        brand = Brand(org_id=org_id, name="Acme brand", postal_address="1 Main St")
        session.add(brand)
        session.flush()
        campaign = Campaign(org_id=org_id, brand_id=brand.id, name="Spring", status=campaign_status)
        if send_window is not None:
            campaign.send_window = send_window
        session.add(campaign)
        session.flush()
        step = CampaignStep(org_id=org_id, campaign_id=campaign.id, position=1, channel=channel, body_template="Hi")
        session.add(step)
        for position in range(2, steps + 1):
            session.add(
                CampaignStep(
                    org_id=org_id, campaign_id=campaign.id, position=position, channel=channel, body_template="Hi",
                    delay_minutes=60,
                )
            )  # fmt: skip
        session.flush()
        seeded = Seeded(org_id=org_id, campaign_id=campaign.id, step_id=step.id)
        for i, status in enumerate(statuses):
            lead = Lead(org_id=org_id, email=f"lead{i}-{uuid.uuid4().hex[:6]}@example.com", status="active")
            session.add(lead)
            session.flush()
            enrollment = Enrollment(org_id=org_id, campaign_id=campaign.id, lead_id=lead.id, status="active")
            session.add(enrollment)
            session.flush()
            message = Message(
                org_id=org_id,
                enrollment_id=enrollment.id,
                step_id=step.id,
                campaign_id=campaign.id,
                lead_id=lead.id,
                channel=channel,
                status=status,
                hold_reason=hold_reason if status == "held" else None,
                sent_at=(sent_at or utcnow()) if status == "sent" else None,
            )
            session.add(message)
            session.flush()
            seeded.message_ids.append(message.id)
            seeded.enrollment_ids.append(enrollment.id)
            seeded.lead_ids.append(lead.id)
    return seeded
