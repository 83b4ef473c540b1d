"""After-commit announcements: live events and the customer webhook jobs committed work owes."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog
from redis import Redis

from libs import jobs as registry
from libs.queue import enqueue_many

log = structlog.get_logger(__name__)

LIVE_KIND = {"sent": "sent", "failed": "failed", "bounced": "failed", "unknown": "unknown", "held": "held"}
WEBHOOK_EVENTS = frozenset({"sent", "delivered", "failed", "bounced"})
"""The outcomes owed to customer webhooks (when an endpoint of the organization subscribes to them)."""


class Message(Protocol):
    """What a live event names of a message: a batch's ``LoadedRow``, or a row the ticker found lost."""

    @property
    def id(self) -> uuid.UUID: ...
    @property
    def org_id(self) -> uuid.UUID: ...
    @property
    def campaign_id(self) -> uuid.UUID: ...
    @property
    def channel(self) -> str: ...


@dataclass
class Announcements:
    """What committed work owes the outside world: live events and customer webhook jobs."""

    live: list[dict[str, Any]] = field(default_factory=list)
    webhooks: list[uuid.UUID] = field(default_factory=list)

    def event(self, kind: str, row: Message, reason: str | None = None) -> None:
        """Owe a live event about ``row``'s message."""
        self.live.append(
            {
                "kind": LIVE_KIND.get(kind, kind),
                "org_id": row.org_id,
                "campaign_id": row.campaign_id,
                "message_id": row.id,
                "channel": row.channel,
                "reason": reason,
            }
        )


def announce(redis: Redis, done: Announcements) -> None:
    """Publish committed events: live events (``libs.events``) and customer webhooks (``inbound`` queue).

    Called only after the commit that recorded them; never raises (a Redis hiccup must not fail
    a job whose sends already happened). Webhook jobs are named by their registry entry
    (``libs.jobs``): the worker never imports the campaign service.
    """
    if done.webhooks:
        specs = [
            registry.PUBLISH_MESSAGE_EVENT.spec(str(event_id), job_id=f"publish-{event_id}")
            for event_id in done.webhooks
        ]
        try:
            enqueue_many(redis, specs)
        except Exception as exc:  # Redis down: the ledger keeps the event; log which ones were not owed
            log.warning("webhook_publish_not_enqueued", events=[str(e) for e in done.webhooks], error=repr(exc))
        done.webhooks.clear()
    if done.live:
        from libs import events  # imported on first use: a quiet worker never loads the stream code

        events.publish_many(redis, done.live)
        done.live.clear()
