"""RQ jobs of the ``inbound`` queue: they take ids, re-read state, and are safe to run twice.

Each job opens one system transaction, applies the rules, commits, and only then enqueues
what the rules asked for (webhook deliveries). Settings come from the environment
(``SDR_*``), as for every worker process.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import TypeVar

import structlog
from sqlalchemy.orm import Session

from libs.db.session import system_session
from libs.queue import enqueue_many
from libs.suppression import stored_hash_key
from services.campaign.inbound import email
from services.campaign.inbound.events import Context, Effects
from services.campaign.inbound.settings import InboundSettings
from services.campaign.inbound.twilio import sms, status
from services.campaign.webhooks.jobs import deliver_webhook, dispose, engine_for, publish_message_event, redis_for

__all__ = [
    "deliver_webhook",
    "dispose",
    "process_inbound_email",
    "process_inbound_sms",
    "process_twilio_status",
    "publish_message_event",
]
# ``deliver_webhook`` and ``publish_message_event`` live in ``services.campaign.webhooks.jobs``;
# they are imported here because RQ stores and enqueues them under this module's path.

log = structlog.get_logger(__name__)
T = TypeVar("T")


def _run(work: Callable[[Session, Context, Effects], T]) -> T:
    settings = InboundSettings()
    engine = engine_for(settings.database_url)
    ctx = Context.from_settings(settings, suppression_key=stored_hash_key(engine, settings))
    effects = Effects()
    with system_session(engine) as session:
        result = work(session, ctx, effects)
    if effects.jobs:
        enqueue_many(redis_for(settings.redis_url), effects.jobs)
    return result


def process_twilio_status(event_id: str) -> str:
    """Apply a stored Twilio message or call status callback (at least once; a second run is a no-op)."""
    return _run(lambda s, ctx, fx: status.process(s, ctx, fx, uuid.UUID(event_id)))


def process_inbound_sms(event_id: str) -> str:
    """Apply a stored inbound text that is a plain reply (at least once; a second run is a no-op)."""
    return _run(lambda s, ctx, fx: sms.process(s, ctx, fx, uuid.UUID(event_id)))


def process_inbound_email(event_id: str) -> str:
    """Apply a stored inbound email: reply, bounce or auto-reply (at least once; a second run is a no-op).

    An email about an erased person is stored without its MIME: only its kind and DSN status are acted on.
    """
    return _run(lambda s, ctx, fx: email.process(s, ctx, fx, uuid.UUID(event_id)))
