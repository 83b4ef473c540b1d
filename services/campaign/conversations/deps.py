"""Providers the inbox's controllers depend on."""

from __future__ import annotations

from litestar.di import NamedDependency
from sqlmodel.ext.asyncio.session import AsyncSession

from libs.security import Principal
from services.campaign.conversations.repository import ConversationRepository
from services.campaign.conversations.service import ConversationService


async def provide_conversation_service(
    session: NamedDependency[AsyncSession], principal: NamedDependency[Principal]
) -> ConversationService:
    """Dependency: the inbox of the caller's organization, on the request's transaction."""
    return ConversationService(ConversationRepository(session, principal.org_id))
