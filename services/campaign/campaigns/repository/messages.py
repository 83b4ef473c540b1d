"""The ledger's read side: messages, their events and personalizations."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, select

from libs.db.models.campaign import (
    Message,
    MessageEvent,
    MessageStatus,
)
from libs.db.models.worker import Personalization
from libs.pagination import keyset
from services.campaign.campaigns.repository.base import (
    TenantRepository,
)


class MessageRepository(TenantRepository):
    """The ledger's read side: messages, their events and personalizations."""

    async def list(
        self,
        *,
        limit: int,
        cursor: str | None,
        campaign_id: uuid.UUID | None = None,
        lead_id: uuid.UUID | None = None,
        step_id: uuid.UUID | None = None,
        status: str | None = None,
        channel: str | None = None,
    ) -> Sequence[Message]:
        """Return ``limit + 1`` messages, newest first."""
        query = select(Message).where(Message.org_id == self.org_id)
        for column, value in (
            (Message.campaign_id, campaign_id),
            (Message.lead_id, lead_id),
            (Message.step_id, step_id),
            (Message.status, status),
            (Message.channel, channel),
        ):
            if value is not None:
                query = query.where(column == value)
        after = keyset(Message, cursor)
        if after is not None:
            query = query.where(after)
        query = query.order_by(col(Message.created_at).desc(), col(Message.id).desc()).limit(limit + 1)
        return (await self.session.exec(query)).all()

    async def get(self, message_id: uuid.UUID) -> Message | None:
        """Return one message."""
        query = select(Message).where(Message.org_id == self.org_id, Message.id == message_id)
        return (await self.session.exec(query)).first()

    async def personalization(self, message_id: uuid.UUID) -> Personalization | None:
        """Return the newest record of how the worker wrote ``message_id``'s content, if any."""
        query = (
            select(Personalization)
            .where(Personalization.org_id == self.org_id, Personalization.message_id == message_id)
            .order_by(col(Personalization.created_at).desc())
            .limit(1)
        )
        return (await self.session.exec(query)).first()

    async def events_of_messages(self, message_ids: Sequence[uuid.UUID]) -> Sequence[MessageEvent]:
        """Return the events of ``message_ids``, oldest first."""
        if not message_ids:
            return []
        query = (
            select(MessageEvent)
            .where(MessageEvent.org_id == self.org_id, col(MessageEvent.message_id).in_(message_ids))
            .order_by(col(MessageEvent.occurred_at), col(MessageEvent.id))
        )
        return (await self.session.exec(query)).all()

    async def lead_messages(self, lead_id: uuid.UUID, limit: int = 500) -> Sequence[Message]:
        """Return the lead's messages, oldest first (at most ``limit``)."""
        query = (
            select(Message)
            .where(Message.org_id == self.org_id, Message.lead_id == lead_id)
            .order_by(col(Message.created_at), col(Message.id))
            .limit(limit)
        )
        return (await self.session.exec(query)).all()

    async def lead_events(self, lead_id: uuid.UUID, limit: int = 2000) -> Sequence[MessageEvent]:
        """Return the lead's events, oldest first (at most ``limit``)."""
        query = (
            select(MessageEvent)
            .where(MessageEvent.org_id == self.org_id, MessageEvent.lead_id == lead_id)
            .order_by(col(MessageEvent.occurred_at), col(MessageEvent.id))
            .limit(limit)
        )
        return (await self.session.exec(query)).all()

    async def message_for(self, enrollment_id: uuid.UUID, step_id: uuid.UUID) -> Message | None:
        """Return the ledger row of an enrollment's step, if written."""
        query = select(Message).where(
            Message.org_id == self.org_id, Message.enrollment_id == enrollment_id, Message.step_id == step_id
        )
        return (await self.session.exec(query)).first()

    async def awaiting_review(self, campaign_id: uuid.UUID, *, limit: int, cursor: str | None) -> Sequence[Message]:
        """Return ``limit + 1`` of the campaign's messages awaiting review, newest first."""
        query = select(Message).where(
            Message.org_id == self.org_id,
            Message.campaign_id == campaign_id,
            Message.status == MessageStatus.AWAITING_REVIEW.value,
        )
        after = keyset(Message, cursor)
        if after is not None:
            query = query.where(after)
        query = query.order_by(col(Message.created_at).desc(), col(Message.id).desc()).limit(limit + 1)
        return (await self.session.exec(query)).all()

    async def awaiting_ids(self, campaign_id: uuid.UUID, limit: int) -> Sequence[uuid.UUID]:
        """The ids of the campaign's messages awaiting review, oldest first (at most ``limit``)."""
        query = (
            select(Message.id)
            .where(
                Message.org_id == self.org_id,
                Message.campaign_id == campaign_id,
                Message.status == MessageStatus.AWAITING_REVIEW.value,
            )
            .order_by(col(Message.created_at), col(Message.id))
            .limit(limit)
        )
        return (await self.session.exec(query)).all()

    async def for_review(self, message_ids: Sequence[uuid.UUID]) -> Sequence[Any]:
        """The messages with what checking their content needs (the brand's rules), locked for the decision."""
        if not message_ids:
            return []
        conn = await self.session.connection()
        rows = await conn.execute(_FOR_REVIEW, {"org": self.org_id, "ids": list(message_ids)})
        return rows.all()


_FOR_REVIEW = sa.text(
    """
    SELECT m.id, m.campaign_id, m.lead_id, m.channel, m.status, m.subject, m.body,
           b.website, b.forbidden_claims
    FROM messages m JOIN campaigns c ON c.id = m.campaign_id JOIN brands b ON b.id = c.brand_id
    WHERE m.org_id = :org AND m.id = ANY(CAST(:ids AS uuid[]))
    ORDER BY m.created_at, m.id
    FOR UPDATE OF m
    """
)
