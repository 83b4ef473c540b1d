"""HTTP surface of the auth service: one controller per resource, thin handlers."""

from __future__ import annotations

import uuid
from typing import Any

from litestar import Controller, Request, delete, get, patch, post
from litestar.connection import ASGIConnection
from litestar.datastructures import CacheControlHeader
from litestar.di import NamedDependency
from litestar.handlers.base import BaseRouteHandler
from litestar.params import FromPath, FromQuery, JSONBody

from libs.openapi import problems
from libs.pagination import DEFAULT_LIMIT, Cursor, Limit, Page
from libs.scopes import ANY_TOKEN, PEOPLE_ONLY, Area, scope_area
from libs.security import PUBLIC, Principal, Role, operator_only, requires
from services.auth.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyRead,
    ApiKeyToken,
    ApiKeyUpdate,
    InviteAccept,
    InviteCreate,
    InviteCreated,
    InviteRead,
    LoginRequest,
    MemberRead,
    MemberUpdate,
    MeRead,
    PasswordChange,
    RefreshRequest,
    SessionRead,
    SigningKeyRead,
    SignupCreate,
    SwitchRequest,
    TokenPair,
)
from services.auth.service import (
    AccountService,
    ApiKeyService,
    AuthContext,
    InviteService,
    MemberService,
    RefreshService,
    forbid_api_keys,
)
from services.auth.signing import rotate_signing_key

PREFIX = "/api/auth"


def humans_only(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Guard: API-key tokens may not manage people, keys or sessions."""
    if isinstance(connection.user, Principal):
        forbid_api_keys(connection.user)


class SessionController(Controller):
    """Sign-up, sign-in, refresh, sign-out, the caller, switching organization, passwords."""

    path = PREFIX
    tags = ["auth"]
    opt = PEOPLE_ONLY

    @post(
        "/signup",
        opt=PUBLIC,
        operation_id="SignUp",
        responses=problems(409, 429, s409="An account with this email already exists."),
    )
    async def signup(self, data: JSONBody[SignupCreate], accounts: NamedDependency[AccountService]) -> SessionRead:
        """Create an organization and its owner; answers with a session."""
        return await accounts.signup(data)

    @post(
        "/login",
        opt=PUBLIC,
        status_code=200,
        operation_id="LogIn",
        responses=problems(401, 403, 429, s401="Unknown email or password.", s403="Not a member of that organization."),
    )
    async def login(
        self,
        data: JSONBody[LoginRequest],
        accounts: NamedDependency[AccountService],
        client_address: NamedDependency[str],
    ) -> SessionRead:
        """Sign in with email and password (429 with Retry-After after repeated failures)."""
        return await accounts.login(data, address=client_address)

    @post(
        "/refresh",
        opt=PUBLIC,
        status_code=200,
        operation_id="RefreshSession",
        responses=problems(401, s401="The refresh token is not valid."),
    )
    async def refresh(self, data: JSONBody[RefreshRequest], auth: NamedDependency[AuthContext]) -> TokenPair:
        """Trade a refresh token for a new pair; the old token is spent (reusing it ends the session)."""
        return await RefreshService(auth).refresh(data.refresh_token.get_secret_value())

    @post("/logout", opt=PUBLIC, status_code=204, operation_id="LogOut")
    async def logout(self, data: JSONBody[RefreshRequest], accounts: NamedDependency[AccountService]) -> None:
        """Revoke the session a refresh token belongs to."""
        await accounts.logout(data.refresh_token.get_secret_value())

    @get("/me", guards=[requires(Role.VIEWER)], opt=ANY_TOKEN, operation_id="GetMe")
    async def me(self, accounts: NamedDependency[AccountService], principal: NamedDependency[Principal]) -> MeRead:
        """Who the caller is, where, with which role, and the organizations they may switch to."""
        return await accounts.me(principal)

    @post(
        "/switch",
        guards=[requires(Role.VIEWER), humans_only],
        status_code=200,
        operation_id="SwitchOrganization",
        responses=problems(404, s404="Not a member of that organization."),
    )
    async def switch(
        self,
        data: JSONBody[SwitchRequest],
        accounts: NamedDependency[AccountService],
        principal: NamedDependency[Principal],
    ) -> SessionRead:
        """Open a session in another organization the caller belongs to."""
        return await accounts.switch(principal, data.organization_id)

    @post(
        "/password",
        guards=[requires(Role.VIEWER), humans_only],
        status_code=200,
        operation_id="ChangePassword",
        responses=problems(401, 429, s401="The current password is wrong."),
    )
    async def change_password(
        self,
        data: JSONBody[PasswordChange],
        accounts: NamedDependency[AccountService],
        principal: NamedDependency[Principal],
        client_address: NamedDependency[str],
    ) -> SessionRead:
        """Change the caller's password; every other session is signed out."""
        return await accounts.change_password(principal, data, address=client_address)


class MemberController(Controller):
    """The organization's members and their roles."""

    path = f"{PREFIX}/members"
    tags = ["members"]
    opt = scope_area(Area.MEMBERS)

    @get("/", guards=[requires(Role.VIEWER)], operation_id="ListMembers")
    async def list_members(
        self,
        members: NamedDependency[MemberService],
        principal: NamedDependency[Principal],
        limit: FromQuery[Limit] = DEFAULT_LIMIT,
        cursor: FromQuery[Cursor] = None,
    ) -> Page[MemberRead]:
        """List the organization's members, newest first."""
        return await members.list(principal, limit=limit, cursor=cursor)

    @get("/{member_id:uuid}", guards=[requires(Role.VIEWER)], operation_id="GetMember")
    async def get_member(
        self,
        member_id: FromPath[uuid.UUID],
        members: NamedDependency[MemberService],
        principal: NamedDependency[Principal],
    ) -> MemberRead:
        """Show one member."""
        return await members.get(principal, member_id)

    @patch(
        "/{member_id:uuid}",
        guards=[requires(Role.ADMIN), humans_only],
        operation_id="UpdateMember",
        responses=problems(409, s409="The organization must keep an owner."),
    )
    async def update_member(
        self,
        member_id: FromPath[uuid.UUID],
        data: JSONBody[MemberUpdate],
        members: NamedDependency[MemberService],
        principal: NamedDependency[Principal],
    ) -> MemberRead:
        """Change a member's role (an organization always keeps an owner)."""
        return await members.change_role(principal, member_id, data.role)

    @delete(
        "/{member_id:uuid}",
        guards=[requires(Role.VIEWER), humans_only],
        operation_id="RemoveMember",
        responses=problems(409, s409="The organization must keep an owner."),
    )
    async def remove_member(
        self,
        member_id: FromPath[uuid.UUID],
        members: NamedDependency[MemberService],
        principal: NamedDependency[Principal],
    ) -> None:
        """Remove a member, or leave (any member may remove themselves)."""
        await members.remove(principal, member_id)


class InviteController(Controller):
    """Invitations to join the organization."""

    path = f"{PREFIX}/invites"
    tags = ["invites"]
    opt = scope_area(Area.MEMBERS)

    @post(
        "/",
        guards=[requires(Role.ADMIN), humans_only],
        operation_id="CreateInvite",
        responses=problems(409, s409="This person is already a member."),
    )
    async def create_invite(
        self,
        data: JSONBody[InviteCreate],
        invites: NamedDependency[InviteService],
        principal: NamedDependency[Principal],
    ) -> InviteCreated:
        """Invite someone by email; the token is in this answer only."""
        return await invites.create(principal, data)

    @get("/", guards=[requires(Role.ADMIN)], operation_id="ListInvites")
    async def list_invites(
        self,
        invites: NamedDependency[InviteService],
        principal: NamedDependency[Principal],
        limit: FromQuery[Limit] = DEFAULT_LIMIT,
        cursor: FromQuery[Cursor] = None,
    ) -> Page[InviteRead]:
        """List the organization's invites, newest first."""
        return await invites.list(principal, limit=limit, cursor=cursor)

    @get("/{invite_id:uuid}", guards=[requires(Role.ADMIN)], operation_id="GetInvite")
    async def get_invite(
        self,
        invite_id: FromPath[uuid.UUID],
        invites: NamedDependency[InviteService],
        principal: NamedDependency[Principal],
    ) -> InviteRead:
        """Show one invite."""
        return await invites.get(principal, invite_id)

    @delete("/{invite_id:uuid}", guards=[requires(Role.ADMIN), humans_only], operation_id="RevokeInvite")
    async def revoke_invite(
        self,
        invite_id: FromPath[uuid.UUID],
        invites: NamedDependency[InviteService],
        principal: NamedDependency[Principal],
    ) -> None:
        """Revoke an invite."""
        await invites.revoke(principal, invite_id)

    @post(
        "/accept",
        opt=PUBLIC,
        status_code=200,
        operation_id="AcceptInvite",
        responses=problems(404, 429, s404="The invite is not valid (unknown, used, revoked or expired)."),
    )
    async def accept_invite(
        self,
        data: JSONBody[InviteAccept],
        accounts: NamedDependency[AccountService],
        client_address: NamedDependency[str],
    ) -> SessionRead:
        """Accept an invite: creates the account, or links an existing one (its password required)."""
        return await accounts.accept_invite(data, address=client_address)


class ApiKeyController(Controller):
    """The organization's API keys."""

    path = f"{PREFIX}/api-keys"
    tags = ["api-keys"]
    opt = scope_area(Area.API_KEYS)

    @post("/", guards=[requires(Role.ADMIN), humans_only], operation_id="CreateApiKey")
    async def create_api_key(
        self,
        data: JSONBody[ApiKeyCreate],
        api_keys: NamedDependency[ApiKeyService],
        principal: NamedDependency[Principal],
    ) -> ApiKeyCreated:
        """Create an API key; the secret is in this answer only."""
        return await api_keys.create(principal, data)

    @get("/", guards=[requires(Role.ADMIN)], operation_id="ListApiKeys")
    async def list_api_keys(
        self,
        api_keys: NamedDependency[ApiKeyService],
        principal: NamedDependency[Principal],
        limit: FromQuery[Limit] = DEFAULT_LIMIT,
        cursor: FromQuery[Cursor] = None,
    ) -> Page[ApiKeyRead]:
        """List the organization's API keys (prefix, name, scopes, last use)."""
        return await api_keys.list(principal, limit=limit, cursor=cursor)

    @get("/{key_id:uuid}", guards=[requires(Role.ADMIN)], operation_id="GetApiKey")
    async def get_api_key(
        self,
        key_id: FromPath[uuid.UUID],
        api_keys: NamedDependency[ApiKeyService],
        principal: NamedDependency[Principal],
    ) -> ApiKeyRead:
        """Show one API key."""
        return await api_keys.get(principal, key_id)

    @patch("/{key_id:uuid}", guards=[requires(Role.ADMIN), humans_only], operation_id="UpdateApiKey")
    async def update_api_key(
        self,
        key_id: FromPath[uuid.UUID],
        data: JSONBody[ApiKeyUpdate],
        api_keys: NamedDependency[ApiKeyService],
        principal: NamedDependency[Principal],
    ) -> ApiKeyRead:
        """Rename an API key."""
        return await api_keys.update(principal, key_id, data)

    @delete("/{key_id:uuid}", guards=[requires(Role.ADMIN), humans_only], operation_id="RevokeApiKey")
    async def revoke_api_key(
        self,
        key_id: FromPath[uuid.UUID],
        api_keys: NamedDependency[ApiKeyService],
        principal: NamedDependency[Principal],
    ) -> None:
        """Revoke an API key; the next exchange with it is refused."""
        await api_keys.revoke(principal, key_id)

    @post(
        "/exchange",
        opt=PUBLIC,
        status_code=200,
        operation_id="ExchangeApiKey",
        responses=problems(401, s401="The API key is not valid."),
    )
    async def exchange(self, request: Request[Any, Any, Any], accounts: NamedDependency[AccountService]) -> ApiKeyToken:
        """Trade `Authorization: Bearer twk_...` for a short-lived access token (the gateway calls this)."""
        return await accounts.exchange_api_key(request.headers.get("authorization"))


class SigningKeyController(Controller):
    """The public keys tokens are verified with, and their rotation."""

    path = PREFIX
    tags = ["keys"]
    opt = PEOPLE_ONLY

    @get(
        "/jwks.json",
        opt=PUBLIC,
        operation_id="GetJwks",
        cache_control=CacheControlHeader(max_age=60, public=True),
    )
    async def jwks(self, auth: NamedDependency[AuthContext]) -> dict[str, Any]:
        """The JWKS: every key whose tokens may still be valid."""
        async with auth.db.system() as session:
            return await auth.keys.jwks(session)

    @post("/signing-keys/rotate", guards=[operator_only], operation_id="RotateSigningKey")
    async def rotate(self, auth: NamedDependency[AuthContext]) -> SigningKeyRead:
        """Operators only: a new key signs from now on; older keys stay published until their tokens expire."""
        key = await rotate_signing_key(auth.db, auth.keys)
        return SigningKeyRead(kid=key.kid, created_at=key.created_at)


ROUTE_HANDLERS = [SessionController, MemberController, InviteController, ApiKeyController, SigningKeyController]
