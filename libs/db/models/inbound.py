"""Tables the inbound part of the campaign box owns: received events, tracked links, customer webhooks.

``inbound_events`` keeps every provider callback, inbound text, inbound email and link hit
we acted on, deduplicated per organization by ``(source, dedupe_key)`` and by Twilio's
``I-Twilio-Idempotency-Token``; ``received_at`` / ``effective_at`` say when an opt-out came in
and when it took effect. ``message_links`` holds the URLs a message carried, by position: a
click token names a position, so a click can only ever redirect to a URL of that message.
``reply_classifications`` records how each inbound reply was understood (``libs.replies``).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from libs.db.base import created_at_field, id_field, in_enum, now_field, org_id_field, timestamp_field
from libs.replies.intents import Intent as ReplyIntent


class InboundSource(StrEnum):
    """Where an inbound event came from."""

    TWILIO_MESSAGE_STATUS = "twilio_message_status"
    TWILIO_CALL_STATUS = "twilio_call_status"
    TWILIO_SMS = "twilio_sms"
    EMAIL = "email"
    UNSUBSCRIBE = "unsubscribe"
    OPEN = "open"
    CLICK = "click"


class InboundStatus(StrEnum):
    """Where the processing of an inbound event is."""

    RECEIVED = "received"
    PROCESSED = "processed"
    IGNORED = "ignored"
    FAILED = "failed"


class DeliveryStatus(StrEnum):
    """Where a webhook delivery is."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class WebhookEventType(StrEnum):
    """Event types a customer endpoint may subscribe to."""

    SENT = "sent"
    DELIVERED = "delivered"
    REPLIED = "replied"
    BOUNCED = "bounced"
    UNSUBSCRIBED = "unsubscribed"
    FAILED = "failed"
    REPLY_RECEIVED = "reply.received"
    """A reply understood: its intent, confidence and fields, and the action the campaign took."""


class InboundEvent(SQLModel, table=True):
    """One thing that came back (callback, text, email, link hit), stored before it is acted on."""

    __tablename__ = "inbound_events"
    __table_args__ = (
        sa.UniqueConstraint("org_id", "source", "dedupe_key"),
        sa.Index(
            "ix_inbound_events_org_id_idempotency_token",
            "org_id",
            "idempotency_token",
            unique=True,
            postgresql_where=sa.text("idempotency_token IS NOT NULL"),
        ),
        sa.Index("ix_inbound_events_org_id_received_at", "org_id", "received_at"),
        sa.Index("ix_inbound_events_message_id", "message_id"),
        sa.CheckConstraint(in_enum("source", InboundSource), name="source"),
        sa.CheckConstraint(in_enum("status", InboundStatus), name="status"),
    )

    id: uuid.UUID = id_field()
    org_id: uuid.UUID = org_id_field()
    source: str = Field(max_length=32)
    dedupe_key: str = Field(max_length=255)
    idempotency_token: str | None = Field(default=None, max_length=255)
    status: str = Field(
        default=InboundStatus.RECEIVED.value, max_length=16, sa_column_kwargs={"server_default": "received"}
    )
    outcome: str | None = Field(default=None, max_length=64)
    message_id: uuid.UUID | None = Field(default=None, foreign_key="messages.id", ondelete="SET NULL")
    lead_id: uuid.UUID | None = Field(default=None, foreign_key="leads.id", ondelete="SET NULL")
    payload: dict[str, Any] = Field(
        default_factory=dict, sa_type=JSONB, nullable=False, sa_column_kwargs={"server_default": sa.text("'{}'")}
    )
    raw: bytes | None = Field(default=None, sa_type=sa.LargeBinary, nullable=True)
    error: str | None = Field(default=None, sa_type=sa.Text)
    received_at: datetime = now_field()
    processed_at: datetime | None = timestamp_field()
    effective_at: datetime | None = timestamp_field()


class MessageLink(SQLModel, table=True):
    """A URL a sent message carried, at ``position``: the only place a click may redirect to."""

    __tablename__ = "message_links"
    __table_args__ = (sa.CheckConstraint("position >= 0", name="position"),)

    message_id: uuid.UUID = Field(foreign_key="messages.id", primary_key=True, ondelete="CASCADE")
    position: int = Field(primary_key=True)
    org_id: uuid.UUID = org_id_field()
    url: str = Field(max_length=2048)
    created_at: datetime = created_at_field()


class WebhookEndpoint(SQLModel, table=True):
    """A customer URL that receives signed events of the types it subscribed to."""

    __tablename__ = "webhook_endpoints"
    __table_args__ = (sa.Index("ix_webhook_endpoints_org_id_created_at_id", "org_id", "created_at", "id"),)

    id: uuid.UUID = id_field()
    org_id: uuid.UUID = org_id_field()
    url: str = Field(max_length=2048)
    description: str | None = Field(default=None, max_length=500)
    event_types: list[str] = Field(
        default_factory=list, sa_type=JSONB, nullable=False, sa_column_kwargs={"server_default": sa.text("'[]'")}
    )
    secret_encrypted: str = Field(sa_type=sa.Text, nullable=False)
    active: bool = Field(default=True, nullable=False, sa_column_kwargs={"server_default": sa.true()})
    created_at: datetime = created_at_field()
    updated_at: datetime = now_field()


class WebhookDelivery(SQLModel, table=True):
    """One event owed to one endpoint; retried with backoff until delivered or out of attempts."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        sa.UniqueConstraint("endpoint_id", "event_id"),
        sa.Index("ix_webhook_deliveries_endpoint_id_created_at_id", "endpoint_id", "created_at", "id"),
        sa.CheckConstraint(in_enum("status", DeliveryStatus), name="status"),
    )

    id: uuid.UUID = id_field()
    org_id: uuid.UUID = org_id_field()
    endpoint_id: uuid.UUID = Field(foreign_key="webhook_endpoints.id", nullable=False, ondelete="CASCADE")
    event_id: uuid.UUID = Field(nullable=False)
    event_type: str = Field(max_length=32)
    payload: dict[str, Any] = Field(
        default_factory=dict, sa_type=JSONB, nullable=False, sa_column_kwargs={"server_default": sa.text("'{}'")}
    )
    status: str = Field(
        default=DeliveryStatus.PENDING.value, max_length=16, sa_column_kwargs={"server_default": "pending"}
    )
    attempts: int = Field(default=0, nullable=False, sa_column_kwargs={"server_default": sa.text("0")})
    next_attempt_at: datetime | None = timestamp_field()
    last_status_code: int | None = Field(default=None)
    last_error: str | None = Field(default=None, max_length=500)
    created_at: datetime = created_at_field()
    updated_at: datetime = now_field()
    delivered_at: datetime | None = timestamp_field()


class WebhookAttempt(SQLModel, table=True):
    """One HTTP attempt of a delivery, kept for the delivery log."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (sa.UniqueConstraint("delivery_id", "number"),)

    id: uuid.UUID = id_field()
    org_id: uuid.UUID = org_id_field()
    delivery_id: uuid.UUID = Field(foreign_key="webhook_deliveries.id", nullable=False, ondelete="CASCADE")
    number: int = Field(nullable=False)
    started_at: datetime = created_at_field()
    duration_ms: int = Field(default=0, nullable=False)
    status_code: int | None = Field(default=None)
    error: str | None = Field(default=None, max_length=500)
    response_excerpt: str | None = Field(default=None, max_length=500)


class ReplyClassificationRecord(SQLModel, table=True):
    """How one inbound reply was understood: intent, fields read out, and who decided at what cost.

    ``source`` is ``openai`` only when the model's answer was used; a local decision (no key,
    opt-out words, or a model failure named in ``fallback_reason``) is ``local``.
    """

    __tablename__ = "reply_classifications"
    __table_args__ = (
        sa.Index("ix_reply_classifications_org_id_created_at", "org_id", "created_at"),
        sa.CheckConstraint(in_enum("intent", ReplyIntent), name="intent"),
        sa.CheckConstraint("source IN ('openai', 'local')", name="source"),
        sa.CheckConstraint("confidence >= 0 AND confidence <= 1", name="confidence"),
    )

    id: uuid.UUID = id_field()
    org_id: uuid.UUID = org_id_field()
    inbound_event_id: uuid.UUID = Field(foreign_key="inbound_events.id", nullable=False, index=True, ondelete="CASCADE")
    message_id: uuid.UUID | None = Field(default=None, foreign_key="messages.id", ondelete="SET NULL")
    intent: str = Field(max_length=32)
    confidence: Decimal = Field(sa_type=sa.Numeric(4, 3), nullable=False)
    source: str = Field(max_length=16)
    fields: dict[str, Any] = Field(
        default_factory=dict, sa_type=JSONB, nullable=False, sa_column_kwargs={"server_default": sa.text("'{}'")}
    )
    matched: str | None = Field(default=None, max_length=200)
    fallback_reason: str | None = Field(default=None, max_length=200)
    prompt_version: str = Field(max_length=32)
    model: str = Field(max_length=100)
    tokens_in: int = Field(default=0, nullable=False)
    tokens_out: int = Field(default=0, nullable=False)
    cost_usd: Decimal = Field(default=Decimal(0), sa_type=sa.Numeric(12, 6), nullable=False)
    latency_ms: int = Field(default=0, nullable=False)
    created_at: datetime = created_at_field()
