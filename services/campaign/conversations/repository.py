"""Every statement of the inbox: conversations derived from the ledger and the inbound events.

A conversation's last activity is the latest of the lead's handed-off messages (``sent_at``)
and of its inbound texts and emails (``received_at``); its last inbound moment is the latter.
Both are computed per lead here, on ``ix_messages_lead_id_created_at`` and
``ix_inbound_events_lead_id_received_at``, so no stored copy can fall behind the events.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import distinct_on, insert
from sqlmodel.ext.asyncio.session import AsyncSession

from libs.db.base import utcnow
from libs.db.models.auth import Membership
from libs.db.models.campaign import Message
from libs.db.models.conversations import Conversation
from libs.db.models.inbound import InboundEvent, ReplyClassificationRecord
from libs.db.models.leads import Lead
from libs.replies.intents import Intent as ReplyIntent

MESSAGES: sa.Table = Message.__table__  # type: ignore[attr-defined]
EVENTS: sa.Table = InboundEvent.__table__  # type: ignore[attr-defined]
CONVERSATIONS: sa.Table = Conversation.__table__  # type: ignore[attr-defined]
LEADS: sa.Table = Lead.__table__  # type: ignore[attr-defined]
MEMBERSHIPS: sa.Table = Membership.__table__  # type: ignore[attr-defined]
CLASSIFICATIONS: sa.Table = ReplyClassificationRecord.__table__  # type: ignore[attr-defined]

INTENTS = ("reply", "opt_out", "opt_out_all", "opt_in", "help", "auto_reply")
"""The outcomes of an inbound text or email that name what the lead meant (others give no intent)."""
KNOWN_INTENTS = frozenset({*INTENTS, *ReplyIntent})
"""Every intent a conversation may have: the reply classifier's and the inbound outcomes above."""
EMAIL_FROM_LEAD = ("reply", "auto_reply")
"""Kinds of inbound email the lead wrote (bounces are the mail system's, not the lead's)."""
EMAIL_TEXT_MAX = 4000


def _inbound(org_id: uuid.UUID) -> sa.ColumnElement[bool]:
    """The inbound events that belong to a conversation: the lead's texts and its emails."""
    return sa.and_(
        EVENTS.c.org_id == org_id,
        EVENTS.c.lead_id.is_not(None),
        sa.or_(
            EVENTS.c.source == "twilio_sms",
            sa.and_(EVENTS.c.source == "email", EVENTS.c.payload["kind"].astext.in_(EMAIL_FROM_LEAD)),
        ),
    )


def _outbound(org_id: uuid.UUID) -> sa.ColumnElement[bool]:
    """The ledger rows that belong to a conversation: messages handed to a provider."""
    return sa.and_(MESSAGES.c.org_id == org_id, MESSAGES.c.sent_at.is_not(None))


def _event_intent(event_id: Any, outcome: Any) -> sa.ColumnElement[Any]:
    """What an inbound event meant: its latest reply classification, else its outcome when that names an intent."""
    classified = (
        sa.select(CLASSIFICATIONS.c.intent)
        .where(CLASSIFICATIONS.c.inbound_event_id == event_id)
        .order_by(CLASSIFICATIONS.c.created_at.desc(), CLASSIFICATIONS.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    return sa.func.coalesce(classified, sa.case((outcome.in_(INTENTS), outcome), else_=sa.null()))


def _activity(org_id: uuid.UUID, lead_id: uuid.UUID | None) -> sa.Subquery:
    """Per lead: its last activity, its last inbound moment and that text's or email's intent.

    One pass over each table (a group for the messages, ``DISTINCT ON`` the lead for the
    inbound events), then one classification lookup per lead; only one lead's rows when
    ``lead_id`` is given.
    """
    out_where = [_outbound(org_id)]
    in_where = [_inbound(org_id)]
    if lead_id is not None:
        out_where.append(MESSAGES.c.lead_id == lead_id)
        in_where.append(EVENTS.c.lead_id == lead_id)
    out = (
        sa.select(MESSAGES.c.lead_id, sa.func.max(MESSAGES.c.sent_at).label("at"))
        .where(*out_where)
        .group_by(MESSAGES.c.lead_id)
        .subquery("o")
    )
    inn = (
        sa.select(EVENTS.c.lead_id, EVENTS.c.received_at.label("at"), EVENTS.c.id.label("event_id"), EVENTS.c.outcome)
        .where(*in_where)
        .ext(distinct_on(EVENTS.c.lead_id))
        .order_by(EVENTS.c.lead_id, EVENTS.c.received_at.desc(), EVENTS.c.id.desc())
        .subquery("i")
    )
    return (
        sa.select(
            sa.func.coalesce(out.c.lead_id, inn.c.lead_id).label("lead_id"),
            sa.func.greatest(out.c.at, inn.c.at).label("last_activity_at"),
            inn.c.at.label("last_inbound_at"),
            _event_intent(inn.c.event_id, inn.c.outcome).label("intent"),
        )
        .select_from(out.join(inn, out.c.lead_id == inn.c.lead_id, full=True))
        .subquery("a")
    )


class ConversationRepository:
    """One organization's conversations on the request's transaction; every statement filters by ``org_id``."""

    def __init__(self, session: AsyncSession, org_id: uuid.UUID) -> None:
        self.session = session
        self.org_id = org_id

    async def _rows(self, statement: Any) -> Sequence[Any]:
        conn = await self.session.connection()
        return (await conn.execute(statement)).all()

    def _summaries(self, activity: sa.Subquery, *, outer: bool) -> sa.Select[Any]:
        """Conversation summaries over ``activity``, joined to the lead and to people's state of it."""
        lead_cols = (LEADS.c.email, LEADS.c.phone, LEADS.c.first_name, LEADS.c.last_name, LEADS.c.company)
        unread = sa.and_(
            activity.c.last_inbound_at.is_not(None),
            sa.or_(CONVERSATIONS.c.read_at.is_(None), activity.c.last_inbound_at > CONVERSATIONS.c.read_at),
        )
        lead_id: sa.ColumnElement[Any]
        if outer:
            source = LEADS.outerjoin(activity, activity.c.lead_id == LEADS.c.id)
            lead_id = LEADS.c.id
        else:
            source = activity.join(LEADS, LEADS.c.id == activity.c.lead_id)
            lead_id = activity.c.lead_id
        source = source.outerjoin(
            CONVERSATIONS, sa.and_(CONVERSATIONS.c.lead_id == lead_id, CONVERSATIONS.c.org_id == self.org_id)
        ).outerjoin(  # an assignee who has left the organization assigns the conversation to nobody
            MEMBERSHIPS,
            sa.and_(MEMBERSHIPS.c.org_id == self.org_id, MEMBERSHIPS.c.user_id == CONVERSATIONS.c.assigned_member_id),
        )
        return (
            sa.select(
                lead_id.label("lead_id"),
                *lead_cols,
                activity.c.last_activity_at,
                activity.c.last_inbound_at,
                CONVERSATIONS.c.read_at,
                MEMBERSHIPS.c.user_id.label("assigned_member_id"),
                sa.func.coalesce(unread, sa.false()).label("unread"),
                activity.c.intent,
            )
            .select_from(source)
            .where(LEADS.c.org_id == self.org_id)
        )

    async def list(
        self,
        *,
        limit: int,
        after: tuple[datetime, uuid.UUID] | None,
        intent: str | None = None,
        campaign_id: uuid.UUID | None = None,
        unread: bool | None = None,
        assigned_to: uuid.UUID | None = None,
    ) -> Sequence[Any]:
        """Return ``limit + 1`` conversations, latest activity first, after ``(last_activity_at, lead_id)``."""
        activity = _activity(self.org_id, None)
        query = self._summaries(activity, outer=False).subquery("s")
        select = sa.select(query)
        if intent is not None:
            select = select.where(query.c.intent == intent)
        if unread is not None:
            select = select.where(query.c.unread.is_(unread))
        if assigned_to is not None:
            select = select.where(query.c.assigned_member_id == assigned_to)
        if campaign_id is not None:
            select = select.where(
                sa.exists().where(
                    MESSAGES.c.org_id == self.org_id,
                    MESSAGES.c.lead_id == query.c.lead_id,
                    MESSAGES.c.campaign_id == campaign_id,
                )
            )
        if after is not None:
            select = select.where(sa.tuple_(query.c.last_activity_at, query.c.lead_id) < sa.tuple_(*after))
        select = select.order_by(query.c.last_activity_at.desc(), query.c.lead_id.desc()).limit(limit + 1)
        return await self._rows(select)

    async def get(self, lead_id: uuid.UUID) -> Any | None:
        """Return one lead's conversation summary (a lead with no activity yet has one too), or None."""
        activity = _activity(self.org_id, lead_id)
        rows = await self._rows(self._summaries(activity, outer=True).where(LEADS.c.id == lead_id))
        return rows[0] if rows else None

    async def thread(
        self, lead_id: uuid.UUID, *, limit: int, after: tuple[datetime, uuid.UUID] | None
    ) -> Sequence[Any]:
        """Return ``limit + 1`` items of the lead's thread, newest first: messages out and texts/emails in."""
        outgoing = sa.select(
            sa.literal("out").label("direction"),
            MESSAGES.c.id,
            MESSAGES.c.channel,
            MESSAGES.c.sent_at.label("at"),
            MESSAGES.c.campaign_id,
            MESSAGES.c.id.label("message_id"),
            MESSAGES.c.status,
            MESSAGES.c.subject,
            MESSAGES.c.body,
            sa.null().label("intent"),
            sa.cast(sa.null(), sa.LargeBinary).label("raw"),
        ).where(_outbound(self.org_id), MESSAGES.c.lead_id == lead_id)
        replied_to = MESSAGES.alias("r")
        incoming = (
            sa.select(
                sa.literal("in").label("direction"),
                EVENTS.c.id,
                sa.case((EVENTS.c.source == "twilio_sms", "sms"), else_="email").label("channel"),
                EVENTS.c.received_at.label("at"),
                replied_to.c.campaign_id,
                EVENTS.c.message_id,
                EVENTS.c.status,
                EVENTS.c.payload["subject"].astext.label("subject"),
                EVENTS.c.payload["params"]["Body"].astext.label("body"),
                _event_intent(EVENTS.c.id, EVENTS.c.outcome).label("intent"),
                sa.case((EVENTS.c.source == "email", EVENTS.c.raw), else_=sa.null()).label("raw"),
            )
            .select_from(EVENTS.outerjoin(replied_to, replied_to.c.id == EVENTS.c.message_id))
            .where(_inbound(self.org_id), EVENTS.c.lead_id == lead_id)
        )
        items = sa.union_all(outgoing, incoming).subquery("t")
        select = sa.select(items)
        if after is not None:
            select = select.where(sa.tuple_(items.c.at, items.c.id) < sa.tuple_(*after))
        return await self._rows(select.order_by(items.c.at.desc(), items.c.id.desc()).limit(limit + 1))

    async def is_member(self, user_id: uuid.UUID) -> bool:
        """Whether ``user_id`` is a member of the organization."""
        query = sa.select(MEMBERSHIPS.c.id).where(MEMBERSHIPS.c.org_id == self.org_id, MEMBERSHIPS.c.user_id == user_id)
        return bool(await self._rows(query.limit(1)))

    async def save(self, lead_id: uuid.UUID, **values: Any) -> None:
        """Write people's state of the lead's conversation (``read_at``, ``assigned_member_id``), creating its row."""
        now = utcnow()
        stmt = insert(CONVERSATIONS).values(
            lead_id=lead_id, org_id=self.org_id, created_at=now, updated_at=now, **values
        )
        stmt = stmt.on_conflict_do_update(index_elements=[CONVERSATIONS.c.lead_id], set_={**values, "updated_at": now})
        conn = await self.session.connection()
        await conn.execute(stmt)
