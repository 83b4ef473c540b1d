"""Fixtures for the inbox: the campaign app and two organizations (the campaigns suite's), and a thread seeder."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from tests.services.campaign.campaigns.conftest import (  # noqa: F401  (fixtures)
    World,
    brand_url,
    campaign_settings,
    client,
    db,
    seed_lead,
    world,
)

__all__ = ["Seeder", "World", "seed_lead"]


@dataclass
class Seeder:
    """Writes what the worker and the inbound callbacks write: sent messages, received texts and emails."""

    db: sa.Engine
    org_id: uuid.UUID
    brand_id: uuid.UUID

    def campaign(self, channel: str = "email") -> tuple[uuid.UUID, uuid.UUID]:
        """A campaign with one step on ``channel``: its id and the step's."""
        campaign_id, step_id = uuid.uuid4(), uuid.uuid4()
        with self.db.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO campaigns (id, org_id, brand_id, name, status, created_at, updated_at) "
                    "VALUES (:id, :o, :b, 'Outreach', 'active', now(), now())"
                ),
                {"id": campaign_id, "o": self.org_id, "b": self.brand_id},
            )
            conn.execute(
                sa.text(
                    "INSERT INTO campaign_steps (id, org_id, campaign_id, position, channel, delay_minutes, "
                    "created_at, updated_at) "
                    "VALUES (:id, :o, :c, 1, :ch, 0, now(), now())"
                ),
                {"id": step_id, "o": self.org_id, "c": campaign_id, "ch": channel},
            )
        return campaign_id, step_id

    def sent(
        self, lead_id: uuid.UUID, campaign: tuple[uuid.UUID, uuid.UUID], at: datetime | None, **fields: Any
    ) -> uuid.UUID:
        """A message of ``campaign``'s step to the lead, handed off at ``at`` (None: not sent yet)."""
        campaign_id, step_id = campaign
        enrollment_id, message_id = uuid.uuid4(), uuid.uuid4()
        with self.db.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO enrollments (id, org_id, campaign_id, lead_id, status, created_at, updated_at) "
                    "VALUES (:id, :o, :c, :l, 'active', now(), now())"
                ),
                {"id": enrollment_id, "o": self.org_id, "c": campaign_id, "l": lead_id},
            )
            conn.execute(
                sa.text(
                    "INSERT INTO messages (id, org_id, enrollment_id, step_id, campaign_id, lead_id, channel, status, "
                    "subject, body, sent_at, created_at, updated_at) SELECT :id, :o, :e, s.id, s.campaign_id, :l, "
                    "s.channel, :status, :subject, :body, :at, now(), now() FROM campaign_steps s WHERE s.id = :s"
                ),
                {
                    "id": message_id,
                    "o": self.org_id,
                    "e": enrollment_id,
                    "s": step_id,
                    "l": lead_id,
                    "at": at,
                    "status": fields.get("status", "sent" if at else "queued"),
                    "subject": fields.get("subject", "Hello"),
                    "body": fields.get("body", "Hi there"),
                },
            )
        return message_id

    def inbound(
        self,
        lead_id: uuid.UUID,
        at: datetime,
        *,
        source: str = "twilio_sms",
        outcome: str = "reply",
        payload: dict[str, Any] | None = None,
        raw: bytes | None = None,
        message_id: uuid.UUID | None = None,
    ) -> uuid.UUID:
        """An inbound event as the inbound jobs leave it once processed."""
        event_id = uuid.uuid4()
        with self.db.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO inbound_events (id, org_id, source, dedupe_key, status, outcome, message_id, "
                    "lead_id, payload, raw, received_at, processed_at) VALUES (:id, :o, :src, :k, 'processed', "
                    ":outcome, :m, :l, CAST(:payload AS jsonb), :raw, :at, :at)"
                ),
                {
                    "id": event_id,
                    "o": self.org_id,
                    "src": source,
                    "k": event_id.hex,
                    "outcome": outcome,
                    "m": message_id,
                    "l": lead_id,
                    "payload": json.dumps(payload or {}),
                    "raw": raw,
                    "at": at,
                },
            )
        return event_id

    def classify(self, event_id: uuid.UUID, intent: str) -> None:
        """A reply classification of the inbound event, as the reply classifier records it."""
        with self.db.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO reply_classifications (id, org_id, inbound_event_id, intent, confidence, source, "
                    "fields, prompt_version, model, tokens_in, tokens_out, cost_usd, latency_ms, created_at) VALUES "
                    "(gen_random_uuid(), :o, :e, :i, 0.9, 'local', '{}'::jsonb, 'v1', 'local', 0, 0, 0, 0, now())"
                ),
                {"o": self.org_id, "e": event_id, "i": intent},
            )

    def member(self, role: str = "member") -> uuid.UUID:
        """A user who is a member of the organization."""
        user_id = uuid.uuid4()
        with self.db.begin() as conn:
            conn.execute(
                sa.text("INSERT INTO users (id, email, email_normalized, created_at) VALUES (:id, :e, :e, now())"),
                {"id": user_id, "e": f"{user_id.hex[:12]}@team.example"},
            )
            conn.execute(
                sa.text(
                    "INSERT INTO memberships (id, org_id, user_id, role, created_at, updated_at) "
                    "VALUES (gen_random_uuid(), :o, :u, :r, now(), now())"
                ),
                {"o": self.org_id, "u": user_id, "r": role},
            )
        return user_id
