"""Tables the campaign box owns: campaigns, steps, enrollments, the message ledger and its events.

Step positions are 1-based and contiguous within a campaign; an enrollment's
``next_step_position`` names the step the ticker sends next. A message (ledger row) is unique
per (enrollment, step); events are rows, and the analytics rollups (``libs/db/models/analytics.py``)
are kept from them by triggers, so ``sdr analytics rebuild`` can always recompute them.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from libs.db.base import created_at_field, id_field, in_enum, now_field, org_id_field, timestamp_field, utcnow
from libs.replies.intents import Intent as ReplyIntent


class CampaignStatus(StrEnum):
    """Where a campaign is in its life."""

    DRAFT = "draft"
    ACTIVE = "active"
    PAUSED = "paused"
    COMPLETED = "completed"
    ARCHIVED = "archived"


class Channel(StrEnum):
    """How a step reaches a lead."""

    EMAIL = "email"
    SMS = "sms"
    VOICEMAIL = "voicemail"


class DelayUnit(StrEnum):
    """The unit a step's delay was written in (``delay_minutes`` holds the value)."""

    MINUTES = "minutes"
    HOURS = "hours"
    DAYS = "days"


class EnrollmentStatus(StrEnum):
    """Where a lead is in a campaign."""

    ACTIVE = "active"
    PAUSED = "paused"
    COMPLETED = "completed"
    STOPPED = "stopped"


class MessageStatus(StrEnum):
    """The ledger's state machine (README, "Guarantees")."""

    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    FAILED = "failed"
    BOUNCED = "bounced"
    UNKNOWN = "unknown"
    HELD = "held"
    SKIPPED = "skipped"
    AWAITING_REVIEW = "awaiting_review"


class ReviewMode(StrEnum):
    """Which messages of a campaign wait for a person's approval before they may be sent."""

    OFF = "off"
    FIRST_N = "first_n"  # the first ``review_first_n`` messages of each step
    ALL = "all"


class ReviewAfterDeadline(StrEnum):
    """What becomes of a message still awaiting review when its review deadline passes."""

    SKIP = "skip"
    SEND = "send"


class EventType(StrEnum):
    """What happened to a message."""

    SENT = "sent"
    DELIVERED = "delivered"
    OPENED = "opened"
    CLICKED = "clicked"
    REPLIED = "replied"
    BOUNCED = "bounced"
    UNSUBSCRIBED = "unsubscribed"
    FAILED = "failed"
    HELD = "held"
    SENDER_CHANGED = "sender_changed"
    """A lead's sender of a kind was paused, removed or left the pool: another one of the pool took it over."""


def _jsonb(default: Any, server_default: str) -> Any:
    return Field(
        default_factory=lambda: default() if callable(default) else default,
        sa_type=JSONB,
        nullable=False,
        sa_column_kwargs={"server_default": sa.text(f"'{server_default}'::jsonb")},
    )


DEFAULT_SEND_WINDOW: dict[str, Any] = {"weekdays": [0, 1, 2, 3, 4], "start": "09:00", "end": "17:00"}
"""Monday to Friday (0 = Monday), 09:00 to 17:00 in the lead's local time."""
DEFAULT_STOP_RULES: dict[str, bool] = {"on_reply": True, "on_click": False, "on_unsubscribe": True, "on_bounce": False}
DEFAULT_AI: dict[str, Any] = {"enabled": True, "instructions": None, "model": None}


class ReplyAction(StrEnum):
    """What a campaign does with a reply of one intent (``campaigns.reply_actions``: intent -> action)."""

    STOP = "stop"
    """Stop the lead's sequences (where the campaign's ``on_reply`` stop rule is on) and mark the reply."""
    PAUSE = "pause"
    """Hold this campaign's enrollment until the date the reply names (else a default delay), then go on."""
    UNSUBSCRIBE = "unsubscribe"
    """Suppress the lead's address and stop its sequences."""
    REFER = "refer"
    """Create the referred person as a lead (source ``referral``) and stop the writer's sequences."""
    REFER_AND_ENROLL = "refer_and_enroll"
    """:attr:`REFER`, and enroll the referred lead in this campaign."""
    CONTINUE = "continue"
    """Record the reply; the sequence goes on."""


DEFAULT_REPLY_ACTIONS: dict[str, str] = {
    ReplyIntent.INTERESTED.value: ReplyAction.STOP.value,
    ReplyIntent.MEETING_REQUEST.value: ReplyAction.STOP.value,
    ReplyIntent.QUESTION.value: ReplyAction.STOP.value,
    ReplyIntent.OBJECTION.value: ReplyAction.STOP.value,
    ReplyIntent.NOT_NOW.value: ReplyAction.PAUSE.value,
    ReplyIntent.OUT_OF_OFFICE.value: ReplyAction.PAUSE.value,
    ReplyIntent.REFERRAL.value: ReplyAction.REFER.value,
    ReplyIntent.WRONG_PERSON.value: ReplyAction.STOP.value,
    ReplyIntent.NOT_INTERESTED.value: ReplyAction.STOP.value,
    ReplyIntent.UNSUBSCRIBE.value: ReplyAction.UNSUBSCRIBE.value,
    ReplyIntent.AUTO_REPLY.value: ReplyAction.CONTINUE.value,
    ReplyIntent.OTHER.value: ReplyAction.STOP.value,
}
"""The safe defaults: a person who answered is not written to again by the sequence, except an absence
or a "not now" (paused until the date), a receipt (the sequence goes on) and a referral (the referred
person becomes a lead, not enrolled)."""


class Campaign(SQLModel, table=True):
    """A multichannel sequence an organization runs on one of its brands."""

    __tablename__ = "campaigns"
    __table_args__ = (
        sa.CheckConstraint(in_enum("status", CampaignStatus), name="status"),
        sa.CheckConstraint("pacing_per_day IS NULL OR pacing_per_day > 0", name="pacing_per_day"),
        sa.CheckConstraint(in_enum("review_mode", ReviewMode), name="review_mode"),
        sa.CheckConstraint("review_first_n >= 0", name="review_first_n"),
        sa.CheckConstraint("review_deadline_hours IS NULL OR review_deadline_hours > 0", name="review_deadline_hours"),
        sa.CheckConstraint(in_enum("review_after_deadline", ReviewAfterDeadline), name="review_after_deadline"),
        sa.Index("ix_campaigns_org_id_created_at_id", "org_id", "created_at", "id"),
    )

    id: uuid.UUID = id_field()
    org_id: uuid.UUID = org_id_field()
    brand_id: uuid.UUID = Field(foreign_key="brands.id", nullable=False, index=True, ondelete="RESTRICT")
    name: str = Field(max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    status: str = Field(default=CampaignStatus.DRAFT.value, max_length=16, sa_column_kwargs={"server_default": "draft"})
    timezone: str = Field(default="UTC", max_length=64, sa_column_kwargs={"server_default": "UTC"})
    send_window: dict[str, Any] = _jsonb(
        lambda: dict(DEFAULT_SEND_WINDOW), '{"weekdays": [0, 1, 2, 3, 4], "start": "09:00", "end": "17:00"}'
    )
    stop_rules: dict[str, Any] = _jsonb(
        lambda: dict(DEFAULT_STOP_RULES),
        '{"on_reply": true, "on_click": false, "on_unsubscribe": true, "on_bounce": false}',
    )
    pacing_per_day: int | None = Field(default=None)
    ai: dict[str, Any] = _jsonb(lambda: dict(DEFAULT_AI), '{"enabled": true, "instructions": null, "model": null}')
    reply_actions: dict[str, Any] = _jsonb(lambda: dict(DEFAULT_REPLY_ACTIONS), json.dumps(DEFAULT_REPLY_ACTIONS))
    cloned_from_id: uuid.UUID | None = Field(default=None)
    review_mode: str = Field(default=ReviewMode.OFF.value, max_length=16, sa_column_kwargs={"server_default": "off"})
    review_first_n: int = Field(default=0, nullable=False, sa_column_kwargs={"server_default": sa.text("0")})
    review_deadline_hours: int | None = Field(default=None, description="None: a message waits for review forever.")
    review_after_deadline: str = Field(
        default=ReviewAfterDeadline.SKIP.value, max_length=16, sa_column_kwargs={"server_default": "skip"}
    )
    sender_pool: dict[str, list[str]] | None = Field(
        default=None,
        sa_type=JSONB(none_as_null=True),
        nullable=True,
        description="Sender ids per sender kind (email, sms, voice); a kind left out sends from all the brand's.",
    )
    version: int = Field(default=1, nullable=False, sa_column_kwargs={"server_default": sa.text("1")})
    created_at: datetime = created_at_field()
    updated_at: datetime = now_field()
    launched_at: datetime | None = timestamp_field()
    paused_at: datetime | None = timestamp_field()
    completed_at: datetime | None = timestamp_field()
    archived_at: datetime | None = timestamp_field()


class CampaignStep(SQLModel, table=True):
    """One step of a sequence: a channel, a delay after the previous step, templates and variants."""

    __tablename__ = "campaign_steps"
    __table_args__ = (
        sa.UniqueConstraint("campaign_id", "position"),
        sa.CheckConstraint(in_enum("channel", Channel), name="channel"),
        sa.CheckConstraint(in_enum("delay_unit", DelayUnit), name="delay_unit"),
        sa.CheckConstraint("delay_minutes >= 0", name="delay_minutes"),
        sa.CheckConstraint("position >= 1", name="position"),
    )

    id: uuid.UUID = id_field()
    org_id: uuid.UUID = org_id_field()
    campaign_id: uuid.UUID = Field(foreign_key="campaigns.id", nullable=False, ondelete="CASCADE")
    position: int = Field(nullable=False)
    channel: str = Field(max_length=16)
    delay_minutes: int = Field(default=0, nullable=False)
    delay_unit: str = Field(default=DelayUnit.DAYS.value, max_length=16, sa_column_kwargs={"server_default": "days"})
    business_days: bool = Field(default=False, nullable=False, sa_column_kwargs={"server_default": sa.false()})
    subject_template: str | None = Field(default=None, sa_type=sa.Text)
    body_template: str | None = Field(default=None, sa_type=sa.Text)
    sms_template: str | None = Field(default=None, sa_type=sa.Text)
    script_template: str | None = Field(default=None, sa_type=sa.Text)
    audio_url: str | None = Field(default=None, max_length=2048)
    ai_instructions: str | None = Field(default=None, sa_type=sa.Text)
    variants: list[dict[str, Any]] = _jsonb(list, "[]")
    send_window: dict[str, Any] | None = Field(
        default=None,
        sa_type=JSONB(none_as_null=True),  # SQL NULL, so the worker's COALESCE(step, campaign) finds the campaign's
        description="The step's own window; None keeps to the campaign's.",
    )
    created_at: datetime = created_at_field()
    updated_at: datetime = now_field()


class Enrollment(SQLModel, table=True):
    """A lead's progress through a campaign; the ticker claims it when ``next_due_at`` has passed."""

    __tablename__ = "enrollments"
    __table_args__ = (
        sa.UniqueConstraint("campaign_id", "lead_id"),
        sa.CheckConstraint(in_enum("status", EnrollmentStatus), name="status"),
        sa.Index("ix_enrollments_status_next_due_at", "status", "next_due_at"),
        sa.Index(
            "ix_enrollments_due_active",
            "next_due_at",
            postgresql_where=sa.text("status = 'active' AND next_due_at IS NOT NULL"),
        ),
        sa.Index("ix_enrollments_lead_id_status", "lead_id", "status"),
        sa.Index("ix_enrollments_campaign_id_created_at_id", "campaign_id", "created_at", "id"),
        *(
            sa.Index(
                f"ix_enrollments_{kind}_sender_id",
                f"{kind}_sender_id",
                postgresql_where=sa.text(f"{kind}_sender_id IS NOT NULL"),
            )
            for kind in ("email", "sms", "voice")
        ),
    )

    id: uuid.UUID = id_field()
    org_id: uuid.UUID = org_id_field()
    campaign_id: uuid.UUID = Field(foreign_key="campaigns.id", nullable=False, ondelete="CASCADE")
    lead_id: uuid.UUID = Field(foreign_key="leads.id", nullable=False, ondelete="CASCADE")
    status: str = Field(
        default=EnrollmentStatus.ACTIVE.value, max_length=16, sa_column_kwargs={"server_default": "active"}
    )
    next_step_position: int = Field(default=1, nullable=False, sa_column_kwargs={"server_default": sa.text("1")})
    next_due_at: datetime | None = timestamp_field()
    stopped_reason: str | None = Field(default=None, max_length=64)
    paused_until: datetime | None = timestamp_field()
    """A reply asked to wait (out of office, not now): ``next_due_at`` is not before this instant."""
    paused_reason: str | None = Field(default=None, max_length=32)
    # the sender each kind of step goes from, chosen at its first send and kept (replies thread);
    # another of the pool takes over when it is paused, removed or left out of the pool
    email_sender_id: uuid.UUID | None = Field(default=None)
    sms_sender_id: uuid.UUID | None = Field(default=None)
    voice_sender_id: uuid.UUID | None = Field(default=None)
    created_at: datetime = created_at_field()
    updated_at: datetime = now_field()
    completed_at: datetime | None = timestamp_field()


class Message(SQLModel, table=True):
    """The ledger: one row per (enrollment, step), moved through its states by conditional updates."""

    __tablename__ = "messages"
    __table_args__ = (
        sa.UniqueConstraint("enrollment_id", "step_id"),
        sa.CheckConstraint(in_enum("status", MessageStatus), name="status"),
        sa.CheckConstraint(in_enum("channel", Channel), name="channel"),
        sa.Index("ix_messages_org_id_created_at_id", "org_id", "created_at", "id"),
        sa.Index("ix_messages_campaign_id_step_id", "campaign_id", "step_id"),
        sa.Index("ix_messages_lead_id_created_at", "lead_id", "created_at"),
        sa.Index("ix_messages_status_next_attempt_at", "status", "next_attempt_at"),
        sa.Index(
            "ix_messages_awaiting_review",
            "campaign_id",
            "created_at",
            "id",
            postgresql_where=sa.text("status = 'awaiting_review'"),
        ),
        sa.Index(
            "ix_messages_review_deadline_at",
            "review_deadline_at",
            postgresql_where=sa.text("status = 'awaiting_review' AND review_deadline_at IS NOT NULL"),
        ),
    )

    id: uuid.UUID = id_field()
    org_id: uuid.UUID = org_id_field()
    enrollment_id: uuid.UUID = Field(foreign_key="enrollments.id", nullable=False, ondelete="CASCADE")
    step_id: uuid.UUID = Field(foreign_key="campaign_steps.id", nullable=False)
    campaign_id: uuid.UUID = Field(foreign_key="campaigns.id", nullable=False, ondelete="CASCADE")
    lead_id: uuid.UUID = Field(foreign_key="leads.id", nullable=False, ondelete="CASCADE")
    channel: str = Field(max_length=16)
    variant: str | None = Field(default=None, max_length=32)
    status: str = Field(
        default=MessageStatus.QUEUED.value, max_length=16, sa_column_kwargs={"server_default": "queued"}
    )
    attempt: int = Field(default=0, nullable=False, sa_column_kwargs={"server_default": sa.text("0")})
    due_at: datetime | None = timestamp_field()
    next_attempt_at: datetime | None = timestamp_field()
    hold_reason: str | None = Field(default=None, max_length=64)
    provider_message_id: str | None = Field(default=None, max_length=255)
    subject: str | None = Field(default=None, sa_type=sa.Text)
    body: str | None = Field(default=None, sa_type=sa.Text)
    error_code: str | None = Field(default=None, max_length=64)
    error_detail: str | None = Field(default=None, sa_type=sa.Text)
    sent_at: datetime | None = timestamp_field()
    review_deadline_at: datetime | None = timestamp_field()
    reviewed_by: uuid.UUID | None = Field(default=None, description="Who approved or rejected it; None: the deadline.")
    reviewed_at: datetime | None = timestamp_field()
    review_note: str | None = Field(default=None, sa_type=sa.Text)
    created_at: datetime = created_at_field()
    updated_at: datetime = now_field()


class MessageEvent(SQLModel, table=True):
    """Something that happened to a message (or to a lead in a campaign): analytics count these."""

    __tablename__ = "message_events"
    __table_args__ = (
        sa.CheckConstraint(in_enum("type", EventType), name="type"),
        sa.Index(
            "ix_message_events_campaign_id_type_occurred_at",
            "campaign_id",
            "type",
            "occurred_at",
            postgresql_include=["message_id", "org_id"],  # analytics read only the index (migration 0009)
        ),
        sa.Index("ix_message_events_message_id_occurred_at", "message_id", "occurred_at"),
        sa.Index("ix_message_events_lead_id_occurred_at", "lead_id", "occurred_at"),
    )

    id: uuid.UUID = id_field()
    org_id: uuid.UUID = org_id_field()
    message_id: uuid.UUID | None = Field(default=None, foreign_key="messages.id", nullable=True, ondelete="CASCADE")
    lead_id: uuid.UUID = Field(foreign_key="leads.id", nullable=False, ondelete="CASCADE")
    campaign_id: uuid.UUID | None = Field(default=None, foreign_key="campaigns.id", nullable=True, ondelete="CASCADE")
    type: str = Field(max_length=16)
    occurred_at: datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True), nullable=False)
    data: dict[str, Any] = _jsonb(dict, "{}")
