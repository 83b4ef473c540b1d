"""HTTP controllers of the inbox: conversations, their threads, read state and assignment."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from litestar import Controller, get, post, put
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, FromQuery, JSONBody, Parameter
from litestar.status_codes import HTTP_200_OK

from libs.openapi import problems
from libs.pagination import DEFAULT_LIMIT, Cursor, Limit, Page
from libs.scopes import Area, scope_area
from libs.security import Role, requires
from services.campaign.conversations.deps import provide_conversation_service
from services.campaign.conversations.schemas import (
    INTENT,
    AssignmentUpdate,
    ConversationRead,
    ThreadItem,
)
from services.campaign.conversations.service import ConversationService


class ConversationController(Controller):
    """One inbox: each lead's conversation across email and SMS.

    Reading needs ``messages:read`` (a thread shows messages); marking read and assigning are
    changes to how the organization works its leads and need ``leads:write``.
    """

    path = "/api/conversations"
    tags = ["conversations"]
    guards = [requires(Role.VIEWER)]
    opt = scope_area(Area.MESSAGES)
    dependencies = {"conversations": Provide(provide_conversation_service)}

    @get("/", operation_id="ListConversations", responses=problems(422))
    async def list_conversations(
        self,
        conversations: NamedDependency[ConversationService],
        cursor: FromQuery[Cursor] = None,
        limit: FromQuery[Limit] = DEFAULT_LIMIT,
        intent: FromQuery[Annotated[str | None, Parameter(max_length=32, description=INTENT)]] = None,
        campaign_id: FromQuery[uuid.UUID | None] = None,
        unread: FromQuery[bool | None] = None,
        assigned_to: FromQuery[uuid.UUID | None] = None,
    ) -> Page[ConversationRead]:
        """Conversations with any activity, latest first, by intent, campaign, unread state or assignee."""
        return await conversations.list(
            limit=limit,
            cursor=cursor,
            intent=intent,
            campaign_id=campaign_id,
            unread=unread,
            assigned_to=assigned_to,
        )

    @get("/{lead_id:uuid}", operation_id="GetConversation", responses=problems(404, 422))
    async def get_conversation(
        self,
        lead_id: FromPath[uuid.UUID],
        conversations: NamedDependency[ConversationService],
        cursor: FromQuery[Cursor] = None,
        limit: FromQuery[Limit] = DEFAULT_LIMIT,
    ) -> Page[ThreadItem]:
        """The lead's thread, newest first: messages out and texts/emails in, merged by time."""
        return await conversations.thread(lead_id, limit=limit, cursor=cursor)

    @post(
        "/{lead_id:uuid}/read",
        operation_id="MarkConversationRead",
        status_code=HTTP_200_OK,
        guards=[requires(Role.MEMBER)],
        opt=scope_area(Area.LEADS),
        responses=problems(404),
    )
    async def mark_read(
        self, lead_id: FromPath[uuid.UUID], conversations: NamedDependency[ConversationService]
    ) -> ConversationRead:
        """Mark the conversation read; it is unread again when the lead next writes."""
        return await conversations.mark_read(lead_id)

    @put(
        "/{lead_id:uuid}/assignment",
        operation_id="AssignConversation",
        guards=[requires(Role.MEMBER)],
        opt=scope_area(Area.LEADS),
        responses=problems(404, 422),
    )
    async def assign(
        self,
        lead_id: FromPath[uuid.UUID],
        data: JSONBody[AssignmentUpdate],
        conversations: NamedDependency[ConversationService],
    ) -> ConversationRead:
        """Assign the conversation to a member of the organization, or to nobody (``member_id: null``)."""
        return await conversations.assign(lead_id, data.member_id)


CONVERSATION_CONTROLLERS: list[Any] = [ConversationController]
