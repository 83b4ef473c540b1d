"""Dependency providers of the auth service: its services, each on the right transaction."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from sqlmodel.ext.asyncio.session import AsyncSession

from services.auth.service import AccountService, ApiKeyService, AuthContext, InviteService, MemberService
from services.auth.throttle import client_address


def provide_context(state: State) -> AuthContext:
    """The process-wide auth context."""
    ctx: AuthContext = state.auth
    return ctx


async def provide_accounts(
    system_session: NamedDependency[AsyncSession], auth: NamedDependency[AuthContext]
) -> AccountService:
    """Account flows run before a token exists, on a system transaction."""
    return AccountService(system_session, auth)


async def provide_members(session: NamedDependency[AsyncSession], auth: NamedDependency[AuthContext]) -> MemberService:
    """Member management on the caller's tenant transaction."""
    return MemberService(session, auth)


async def provide_invites(session: NamedDependency[AsyncSession], auth: NamedDependency[AuthContext]) -> InviteService:
    """Invite management on the caller's tenant transaction."""
    return InviteService(session, auth)


async def provide_api_keys(session: NamedDependency[AsyncSession], auth: NamedDependency[AuthContext]) -> ApiKeyService:
    """API-key management on the caller's tenant transaction."""
    return ApiKeyService(session, auth)


async def provide_client_address(request: Request[Any, Any, Any], auth: NamedDependency[AuthContext]) -> str:
    """The caller's address: the peer, or what a trusted proxy (the gateway) says it is."""
    peer = request.client.host if request.client else None
    return client_address(peer, request.headers.get("x-forwarded-for"), auth.settings.trusted_proxies)


DEPENDENCIES: dict[str, Provide] = {
    "auth": Provide(provide_context, sync_to_thread=False),
    "accounts": Provide(provide_accounts),
    "members": Provide(provide_members),
    "invites": Provide(provide_invites),
    "api_keys": Provide(provide_api_keys),
    "client_address": Provide(provide_client_address),
}
