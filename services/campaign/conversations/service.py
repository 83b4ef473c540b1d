"""The inbox's rules: conversations of the caller's organization, their read state and assignment."""

from __future__ import annotations

import email
import email.policy
import uuid
from collections.abc import Sequence
from datetime import datetime
from email.message import EmailMessage
from typing import Any

from libs.db.base import utcnow
from libs.errors import Invalid, NotFound
from libs.pagination import Page, decode_cursor, encode_cursor
from services.campaign.conversations.repository import EMAIL_TEXT_MAX, KNOWN_INTENTS, ConversationRepository
from services.campaign.conversations.schemas import ConversationLead, ConversationRead, ThreadItem


def summary(row: Any) -> ConversationRead:
    """A conversation summary from its row."""
    return ConversationRead(
        lead_id=row.lead_id,
        lead=ConversationLead.model_validate(row),
        last_activity_at=row.last_activity_at,
        last_inbound_at=row.last_inbound_at,
        read_at=row.read_at,
        unread=row.unread,
        intent=row.intent,
        assigned_member_id=row.assigned_member_id,
    )


def email_text(raw: bytes | None) -> str | None:
    """The plain-text body of a stored inbound email (its first text part), bounded; None without one."""
    if not raw:
        return None
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    if not isinstance(parsed, EmailMessage):
        return None
    part = parsed.get_body(preferencelist=("plain",))
    if part is None:
        return None
    try:
        text = part.get_content()
    except (LookupError, ValueError):  # an unknown charset or a broken transfer encoding
        return None
    return str(text).strip()[:EMAIL_TEXT_MAX] or None


def item(row: Any) -> ThreadItem:
    """A thread item from its row (an inbound email's text read from the stored message)."""
    body = email_text(row.raw) if row.direction == "in" and row.channel == "email" else row.body
    return ThreadItem.model_validate({**row._mapping, "body": body})


def page_of(rows: Sequence[Any], limit: int, position: Any, to_item: Any) -> Page[Any]:
    """A page of ``limit`` items from ``limit + 1`` rows; ``position`` gives a row's ``(time, id)`` for the cursor."""
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(*position(rows[-1])) if more and rows else None
    return Page[Any](items=[to_item(r) for r in rows], next_cursor=next_cursor)


class ConversationNotFound(NotFound):
    """No such lead in the caller's organization."""


class ConversationService:
    """Conversations of one organization."""

    def __init__(self, repo: ConversationRepository) -> None:
        self.repo = repo

    async def list(
        self,
        *,
        limit: int,
        cursor: str | None,
        intent: str | None,
        campaign_id: uuid.UUID | None,
        unread: bool | None,
        assigned_to: uuid.UUID | None,
    ) -> Page[ConversationRead]:
        """Conversations with any activity, latest first, filtered."""
        if intent is not None and intent not in KNOWN_INTENTS:
            raise Invalid(errors=[{"field": "intent", "message": "not a known intent", "source": "query"}])
        rows = await self.repo.list(
            limit=limit,
            after=decode_cursor(cursor),
            intent=intent,
            campaign_id=campaign_id,
            unread=unread,
            assigned_to=assigned_to,
        )
        return page_of(rows, limit, lambda r: (r.last_activity_at, r.lead_id), summary)

    async def get(self, lead_id: uuid.UUID) -> ConversationRead:
        """One lead's conversation summary; raise ConversationNotFound for a lead not of this organization."""
        row = await self.repo.get(lead_id)
        if row is None:
            raise ConversationNotFound("No such conversation.")
        return summary(row)

    async def thread(self, lead_id: uuid.UUID, *, limit: int, cursor: str | None) -> Page[ThreadItem]:
        """The lead's thread, newest first: messages out and texts/emails in, merged by time."""
        after = decode_cursor(cursor)
        await self.get(lead_id)
        rows = await self.repo.thread(lead_id, limit=limit, after=after)
        return page_of(rows, limit, lambda r: (r.at, r.id), item)

    async def mark_read(self, lead_id: uuid.UUID, at: datetime | None = None) -> ConversationRead:
        """Mark the conversation read as of now: it is unread again when the lead next writes."""
        await self.get(lead_id)
        await self.repo.save(lead_id, read_at=at or utcnow())
        return await self.get(lead_id)

    async def assign(self, lead_id: uuid.UUID, member_id: uuid.UUID | None) -> ConversationRead:
        """Assign the conversation to a member of the organization (or to nobody)."""
        await self.get(lead_id)
        if member_id is not None and not await self.repo.is_member(member_id):
            raise Invalid(
                errors=[{"field": "member_id", "message": "not a member of this organization", "source": "body"}]
            )
        await self.repo.save(lead_id, assigned_member_id=member_id)
        return await self.get(lead_id)
