"""Small factories for the worker tests: an organization with a brand, senders, a campaign and leads."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from libs.crypto import SecretBox
from libs.db.models import Organization
from libs.db.models.brand import Brand, ProviderCredential, Sender
from libs.db.models.campaign import Campaign, CampaignStep, Enrollment
from libs.db.models.leads import Lead
from libs.db.session import system_session
from tests.support.world import World

ALWAYS = {"weekdays": [0, 1, 2, 3, 4, 5, 6], "start": "00:00", "end": "24:00"}
CONSENT = datetime(2026, 1, 1, tzinfo=UTC)


def create_world(
    engine: Engine,
    *,
    channels: Sequence[str] = ("email",),
    leads: int = 1,
    smtp: tuple[str, int] | None = None,
    twilio: tuple[str, str] | None = None,
    box: SecretBox | None = None,
    openai_key: str | None = None,
    due_at: datetime | None = None,
    delay_minutes: int = 0,
    send_window: dict[str, Any] | None = None,
    lead_overrides: dict[str, Any] | None = None,
    campaign_overrides: dict[str, Any] | None = None,
    hourly_limit: int | None = None,
) -> World:
    """Create an organization, a brand with senders, an active campaign with ``channels`` steps and enrolled leads."""
    org_id = uuid.uuid4()
    due_at = due_at or datetime.now(UTC) - timedelta(minutes=1)
    with system_session(engine) as s:
        s.add(Organization(id=org_id, name="Acme"))
        s.flush()
        brand = Brand(
            org_id=org_id,
            name="Acme Analytics",
            website="https://acme.example",
            value_proposition="We cut reporting time in half.",
            postal_address="1 Main St, Springfield, IL 62701, USA",
            forbidden_claims=["guaranteed results"],
        )
        s.add(brand)
        s.flush()
        email_sender = Sender(
            org_id=org_id,
            brand_id=brand.id,
            kind="email",
            from_name="Sam",
            from_address="sam@acme.example",
            smtp_host=smtp[0] if smtp else None,
            smtp_port=smtp[1] if smtp else None,
            smtp_security="none" if smtp else None,
            hourly_limit=hourly_limit,
            verified_at=CONSENT,
        )
        sms_sender = Sender(
            org_id=org_id, brand_id=brand.id, kind="sms", phone_number="+14155550199", verified_at=CONSENT
        )
        voice_sender = Sender(
            org_id=org_id, brand_id=brand.id, kind="voice", phone_number="+14155550199", tts_voice="Polly.Matthew",
            verified_at=CONSENT,
        )  # fmt: skip
        s.add_all([email_sender, sms_sender, voice_sender])
        if twilio and box:
            s.add(
                ProviderCredential(
                    org_id=org_id,
                    provider="twilio",
                    account_sid=twilio[0],
                    secret_encrypted=box.encrypt(twilio[1]),
                    secret_last4=twilio[1][-4:],
                )
            )
        if openai_key and box:
            s.add(
                ProviderCredential(
                    org_id=org_id,
                    provider="openai",
                    secret_encrypted=box.encrypt(openai_key),
                    secret_last4=openai_key[-4:],
                )
            )
        campaign = Campaign(
            org_id=org_id,
            brand_id=brand.id,
            name="Launch",
            status="active",
            send_window=send_window or ALWAYS,
            **(campaign_overrides or {}),
        )
        s.add(campaign)
        s.flush()
        world = World(org_id, brand.id, campaign.id)
        for position, channel in enumerate(channels, start=1):
            step = CampaignStep(
                org_id=org_id,
                campaign_id=campaign.id,
                position=position,
                channel=channel,
                delay_minutes=0 if position == 1 else delay_minutes,
                delay_unit="minutes",
                subject_template="Idea for {{ lead.company }}",
                body_template="Hi {{ lead.first_name }},\n\nStep " + str(position) + ".",
                sms_template="Hi {{ lead.first_name }}, step " + str(position) + ". Reply STOP to opt out.",
                script_template="Hi {{ lead.first_name }}, this is Sam from Acme, step " + str(position) + ".",
            )
            s.add(step)
            s.flush()
            world.step_ids.append(step.id)
        for i in range(leads):
            fields: dict[str, Any] = {
                "email": f"lead{i}@example{i % 3}.test",
                "email_normalized": f"lead{i}@example{i % 3}.test",
                "phone": f"+1212555{i:04d}",
                "first_name": f"Lead{i}",
                "company": f"Company {i}",
                "timezone": "America/New_York",
                "consent_sms_at": CONSENT,
                "consent_voice_at": CONSENT,
            }
            lead = Lead(org_id=org_id, **{**fields, **(lead_overrides or {})})
            s.add(lead)
            s.flush()
            enrollment = Enrollment(
                org_id=org_id, campaign_id=campaign.id, lead_id=lead.id, status="active", next_due_at=due_at
            )
            s.add(enrollment)
            s.flush()
            world.lead_ids.append(lead.id)
            world.enrollment_ids.append(enrollment.id)
    return world
