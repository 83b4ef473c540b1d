"""The inbox: each lead's conversation, its read state and assignment.

A conversation is one lead of an organization: the messages that went out to it (the ledger,
``messages``) and the texts and emails it sent back (``inbound_events``), merged in time order.
Its last activity and last inbound moment are derived from those rows when the inbox is read,
so nothing has to keep them in step; this table holds only what people decide: when the
conversation was last read and which member it is assigned to. A lead without a row here has
never been read and is assigned to nobody.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from libs.db.base import created_at_field, now_field, org_id_field, timestamp_field
from libs.db.models.inbound import InboundEvent


class Conversation(SQLModel, table=True):
    """People's state of one lead's conversation: read up to ``read_at``, assigned to a member (or nobody)."""

    __tablename__ = "conversations"
    __table_args__ = (sa.Index("ix_conversations_org_id_assigned_member_id", "org_id", "assigned_member_id"),)

    lead_id: uuid.UUID = Field(foreign_key="leads.id", primary_key=True, ondelete="CASCADE")
    org_id: uuid.UUID = org_id_field()
    read_at: datetime | None = timestamp_field()
    assigned_member_id: uuid.UUID | None = Field(default=None, foreign_key="users.id", ondelete="SET NULL")
    created_at: datetime = created_at_field()
    updated_at: datetime = now_field()


INBOUND_BY_LEAD = sa.Index(
    "ix_inbound_events_lead_id_received_at",
    InboundEvent.__table__.c.lead_id,  # type: ignore[attr-defined]
    InboundEvent.__table__.c.received_at,  # type: ignore[attr-defined]
)
"""The inbox's read path over ``inbound_events``: a lead's texts and emails by time (migration 0019)."""
