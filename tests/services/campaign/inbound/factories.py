"""Small factories for the inbound tests: an organization with Twilio, a brand, a campaign and messages."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Engine

from libs.crypto import SecretBox
from libs.db.models import Organization
from libs.db.models.brand import Brand, ProviderCredential, Sender
from libs.db.models.campaign import Campaign, CampaignStep, Enrollment, Message
from libs.db.models.inbound import MessageLink
from libs.db.models.leads import Lead
from libs.db.session import system_session
from tests.support.world import World

ACCOUNT_SID = "AC" + "1" * 32
AUTH_TOKEN = "twilio-auth-token-0123456789abcdef"
SMS_NUMBER = "+14155550100"
NOW = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)


def create_world(
    engine: Engine,
    box: SecretBox,
    *,
    leads: int = 1,
    account_sid: str = ACCOUNT_SID,
    auth_token: str = AUTH_TOKEN,
    sms_number: str = SMS_NUMBER,
    stop_rules: dict[str, bool] | None = None,
    phone_base: int = 2015550100,
) -> World:
    """An org with a Twilio credential, a brand with an SMS sender, an active 3-step campaign and enrolled leads."""
    org_id = uuid.uuid4()
    with system_session(engine) as s:
        s.add(Organization(id=org_id, name="Acme"))
        s.flush()
        brand = Brand(
            org_id=org_id,
            name="Acme Analytics",
            website="https://acme.example",
            postal_address="1 Main St, Springfield, IL 62701, USA",
            opt_out_sms="Reply STOP to opt out.",
        )
        s.add(brand)
        s.flush()
        s.add(Sender(org_id=org_id, brand_id=brand.id, kind="sms", phone_number=sms_number, verified_at=NOW))
        s.add(
            ProviderCredential(
                org_id=org_id,
                provider="twilio",
                account_sid=account_sid,
                secret_encrypted=box.encrypt(auth_token),
                secret_last4=auth_token[-4:],
            )
        )
        campaign = Campaign(org_id=org_id, brand_id=brand.id, name="Q4 outreach", status="active")
        if stop_rules is not None:
            campaign.stop_rules = {**campaign.stop_rules, **stop_rules}
        s.add(campaign)
        s.flush()
        steps = [
            CampaignStep(org_id=org_id, campaign_id=campaign.id, position=i + 1, channel=channel)
            for i, channel in enumerate(("email", "sms", "email"))
        ]
        s.add_all(steps)
        world = World(org_id=org_id, brand_id=brand.id, campaign_id=campaign.id, step_ids=[st.id for st in steps])
        for i in range(leads):
            lead = Lead(
                org_id=org_id,
                email=f"lead{i}@example.com",
                email_normalized=f"lead{i}@example.com",
                phone=f"+1{phone_base + i}",
                first_name=f"Lead{i}",
                consent_sms_at=NOW,
                consent_voice_at=NOW,
            )
            s.add(lead)
            s.flush()
            enrollment = Enrollment(
                org_id=org_id, campaign_id=campaign.id, lead_id=lead.id, next_step_position=2, next_due_at=None
            )
            s.add(enrollment)
            s.flush()
            world.lead_ids.append(lead.id)
            world.enrollment_ids.append(enrollment.id)
    return world


def add_message(
    engine: Engine,
    world: World,
    *,
    lead: int = 0,
    step: int = 0,
    channel: str | None = None,
    status: str = "sent",
    provider_message_id: str | None = None,
    links: list[str] | None = None,
    **overrides: Any,
) -> uuid.UUID:
    """Add a ledger row for ``lead`` at ``step`` (sent by default), with its tracked links."""
    channel = channel or ("email", "sms", "email")[step]
    with system_session(engine) as s:
        message = Message(
            org_id=world.org_id,
            enrollment_id=world.enrollment_ids[lead],
            step_id=world.step_ids[step],
            campaign_id=world.campaign_id,
            lead_id=world.lead_ids[lead],
            channel=channel,
            status=status,
            attempt=1 if status != "queued" else 0,
            provider_message_id=provider_message_id,
            sent_at=NOW - timedelta(hours=1) if status not in ("queued", "held") else None,
            due_at=NOW - timedelta(hours=1),
            **overrides,
        )
        s.add(message)
        s.flush()
        for position, url in enumerate(links or []):
            s.add(MessageLink(message_id=message.id, position=position, org_id=world.org_id, url=url))
        return message.id


def one(engine: Engine, sql: str, **params: Any) -> Any:
    """Run one query and return its single scalar."""
    with engine.connect() as conn:
        return conn.execute(sa.text(sql), params).scalar()


def rows(engine: Engine, sql: str, **params: Any) -> list[Any]:
    """Run one query and return every row."""
    with engine.connect() as conn:
        return list(conn.execute(sa.text(sql), params).all())
