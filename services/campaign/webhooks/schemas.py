"""Schemas of the customer webhook API: endpoints and their delivery log."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from libs.db.models.inbound import DeliveryStatus, WebhookEventType

Url = Annotated[str, Field(min_length=8, max_length=2048, description="http(s) URL that receives the events.")]


class EventType(StrEnum):
    """Every event type an endpoint may subscribe to: the message events, and the senders' ones."""

    SENT = WebhookEventType.SENT.value
    DELIVERED = WebhookEventType.DELIVERED.value
    REPLIED = WebhookEventType.REPLIED.value
    BOUNCED = WebhookEventType.BOUNCED.value
    UNSUBSCRIBED = WebhookEventType.UNSUBSCRIBED.value
    FAILED = WebhookEventType.FAILED.value
    REPLY_RECEIVED = WebhookEventType.REPLY_RECEIVED.value
    SENDER_PAUSED = "sender.paused"
    """A health rule paused a sender (``data``: sender_id, brand_id, kind, rule, reason)."""


if {t.value for t in WebhookEventType} - {t.value for t in EventType}:  # pragma: no cover - a new message event
    raise RuntimeError("every message event type must be subscribable")
_EVENT_TYPES = len(EventType)


def _unique(types: list[EventType]) -> list[EventType]:
    return list(dict.fromkeys(types))


class _Strict(BaseModel):
    """A request body: unknown fields are refused by name (a 422), not ignored."""

    model_config = ConfigDict(extra="forbid")


class WebhookCreate(_Strict):
    """A new endpoint: where to send and which event types."""

    url: Url
    event_types: list[EventType] = Field(min_length=1, max_length=_EVENT_TYPES)
    description: str | None = Field(default=None, max_length=500)

    _dedupe = field_validator("event_types")(_unique)


class WebhookUpdate(_Strict):
    """Change an endpoint; omitted fields stay as they are."""

    url: Url | None = None
    event_types: list[EventType] | None = Field(default=None, min_length=1, max_length=_EVENT_TYPES)
    description: str | None = Field(default=None, max_length=500)
    active: bool | None = None

    _dedupe = field_validator("event_types")(lambda v: _unique(v) if v is not None else v)


class WebhookRead(BaseModel):
    """An endpoint as the API shows it (never its secret)."""

    id: uuid.UUID
    url: str
    event_types: list[str]
    description: str | None
    active: bool
    created_at: datetime
    updated_at: datetime


class WebhookCreated(WebhookRead):
    """The endpoint just created, with its signing secret: shown this once, store it now."""

    secret: str = Field(description="Signing secret (whsec_...). Shown once; used as the HMAC-SHA256 key.")


class AttemptRead(BaseModel):
    """One HTTP attempt of a delivery."""

    number: int
    started_at: datetime
    duration_ms: int
    status_code: int | None
    error: str | None
    response_excerpt: str | None


class DeliveryRead(BaseModel):
    """One event owed to the endpoint, with every attempt made so far."""

    id: uuid.UUID
    event_id: uuid.UUID
    event_type: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    payload: dict[str, Any]
    attempt_log: list[AttemptRead]
