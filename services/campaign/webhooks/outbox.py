"""Owing recorded message events to the customer's endpoints (one delivery per endpoint and event).

Nothing here commits or enqueues: the caller commits, then enqueues the ``deliver_webhook`` jobs
appended to ``jobs``.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from libs import jobs as registry
from libs.db.models.inbound import WebhookEventType
from libs.queue import JobSpec

# The webhook statements still live in the inbound repository (its status statements are being
# moved to libs.ledger); they move here once that is done.
from services.campaign.inbound import repository as repo

WEBHOOK_TYPES = frozenset(t.value for t in WebhookEventType)
"""The message event types a customer may subscribe to."""


def delivery_job(delivery_id: uuid.UUID, attempt: int = 1) -> JobSpec:
    """The job that makes attempt ``attempt`` of a delivery."""
    return registry.DELIVER_WEBHOOK.spec(str(delivery_id), job_id=f"webhook-{delivery_id}-{attempt}")


def fan_out(
    session: Session,
    jobs: list[JobSpec],
    *,
    org_id: uuid.UUID,
    event_id: uuid.UUID,
    event_type: str,
    occurred_at: datetime,
    body: dict[str, Any],
) -> list[uuid.UUID]:
    """Create one delivery per endpoint subscribed to ``event_type`` (idempotent per event)."""
    payload = {"id": str(event_id), "type": event_type, "created_at": occurred_at.isoformat(), "data": body}
    created: list[uuid.UUID] = []
    for endpoint in repo.subscribed_endpoints(session, org_id=org_id, event_type=event_type):
        delivery_id = repo.insert_delivery(
            session,
            org_id=org_id,
            endpoint_id=endpoint.id,
            event_id=event_id,
            event_type=event_type,
            payload=payload,
        )
        if delivery_id is not None:
            created.append(delivery_id)
            jobs.append(delivery_job(delivery_id))
    return created


def publish(session: Session, jobs: list[JobSpec], *, event_id: uuid.UUID) -> int:
    """Owe an existing message event (e.g. ``sent`` recorded by the worker) to subscribed endpoints."""
    row = repo.message_event(session, event_id)
    if row is None or row.type not in WEBHOOK_TYPES:
        return 0
    if repo.lead_erased(session, org_id=row.org_id, lead_id=row.lead_id):
        return 0
    body = {
        "lead_id": str(row.lead_id),
        "message_id": str(row.message_id) if row.message_id else None,
        "campaign_id": str(row.campaign_id) if row.campaign_id else None,
        "channel": row.channel,
        **(row.data or {}),
    }
    return len(
        fan_out(
            session,
            jobs,
            org_id=row.org_id,
            event_id=row.id,
            event_type=row.type,
            occurred_at=row.occurred_at,
            body=body,
        )
    )
