"""HTTP surface of the auth service: one controller per resource, thin handlers."""

from __future__ import annotations

import uuid
from typing import Annotated, Any
from urllib.parse import urlencode

import structlog
from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.connection import ASGIConnection
from litestar.datastructures import CacheControlHeader, State
from litestar.di import NamedDependency
from litestar.handlers.base import BaseRouteHandler
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from litestar.response import Redirect

from libs.errors import Invalid, TooManyRequests
from libs.openapi import problems
from libs.pagination import DEFAULT_LIMIT, Cursor, Limit, Page
from libs.scopes import ANY_TOKEN, PEOPLE_ONLY, Area, scope_area
from libs.security import PUBLIC, Principal, Role, operator_only, requires
from services.auth.cookies import answer, cleared_cookies, forget_csrf, refresh_cookie, session_cookies, wants_cookie
from services.auth.errors import InvalidRefreshToken
from services.auth.oidc import OidcProvider, SsoFailed, StateStore, new_pending
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
    SsoRead,
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
SIGN_IN_PAGE = "/signin"
log = structlog.get_logger(__name__)


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
    async def signup(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[SignupCreate],
        accounts: NamedDependency[AccountService],
    ) -> Response[SessionRead]:
        """Create an organization and its owner; answers with a session (cookie mode: `X-Tidewater-Client: web`)."""
        session = await accounts.signup(data)
        return answer(accounts.ctx.settings, session, cookie=wants_cookie(request), status_code=201)

    @post(
        "/login",
        opt=PUBLIC,
        status_code=200,
        operation_id="LogIn",
        responses=problems(401, 403, 429, s401="Unknown email or password.", s403="Not a member of that organization."),
    )
    async def login(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[LoginRequest],
        accounts: NamedDependency[AccountService],
        client_address: NamedDependency[str],
    ) -> Response[SessionRead]:
        """Sign in with email and password (429 with Retry-After after repeated failures).

        With `X-Tidewater-Client: web` the refresh token is set as an HttpOnly cookie, not answered.
        """
        session = await accounts.login(data, address=client_address)
        return answer(accounts.ctx.settings, session, cookie=wants_cookie(request))

    @post(
        "/refresh",
        opt=PUBLIC,
        status_code=200,
        operation_id="RefreshSession",
        responses=problems(
            401, 403, s401="The refresh token is not valid.", s403="The refresh cookie came without its X-CSRF-Token."
        ),
    )
    async def refresh(
        self, request: Request[Any, Any, Any], data: JSONBody[RefreshRequest], auth: NamedDependency[AuthContext]
    ) -> Response[TokenPair]:
        """Trade a refresh token for a new pair; the old token is spent (reusing it ends the session).

        Without `refresh_token` in the body, the refresh cookie is used (it needs `X-CSRF-Token`
        repeating the `tidewater_csrf` cookie) and the new token is set as a cookie again.
        """
        given = data.refresh_token.get_secret_value() if data.refresh_token else None
        token = given or refresh_cookie(request)
        if token is None:
            raise Invalid(errors=[{"field": "refresh_token", "message": "required (or the refresh cookie)"}])
        try:
            pair = await RefreshService(auth).refresh(token)
        except InvalidRefreshToken as exc:
            if given is None:  # the page stops trying its dead cookie: without the CSRF cookie it asks no more
                exc.headers["set-cookie"] = forget_csrf(auth.settings)
            raise
        return answer(auth.settings, pair, cookie=given is None)

    @post(
        "/logout",
        opt=PUBLIC,
        status_code=204,
        operation_id="LogOut",
        responses=problems(403, s403="The refresh cookie came without its X-CSRF-Token."),
    )
    async def logout(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[RefreshRequest],
        accounts: NamedDependency[AccountService],
    ) -> Response[None]:
        """Revoke the session a refresh token (in the body, or the refresh cookie) belongs to.

        By cookie, `X-CSRF-Token` is required and the cookies are cleared.
        """
        if data.refresh_token is not None:
            await accounts.logout(data.refresh_token.get_secret_value())
            return Response(None, status_code=204)
        token = refresh_cookie(request)
        if token is None and not wants_cookie(request):
            raise Invalid(errors=[{"field": "refresh_token", "message": "required (or the refresh cookie)"}])
        if token is not None:
            await accounts.logout(token)
        return Response(None, status_code=204, cookies=cleared_cookies(accounts.ctx.settings))

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
        request: Request[Any, Any, Any],
        data: JSONBody[SwitchRequest],
        accounts: NamedDependency[AccountService],
        principal: NamedDependency[Principal],
    ) -> Response[SessionRead]:
        """Open a session in another organization the caller belongs to (cookie mode as for login)."""
        session = await accounts.switch(principal, data.organization_id)
        return answer(accounts.ctx.settings, session, cookie=wants_cookie(request))

    @post(
        "/password",
        guards=[requires(Role.VIEWER), humans_only],
        status_code=200,
        operation_id="ChangePassword",
        responses=problems(401, 429, s401="The current password is wrong."),
    )
    async def change_password(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[PasswordChange],
        accounts: NamedDependency[AccountService],
        principal: NamedDependency[Principal],
        client_address: NamedDependency[str],
    ) -> Response[SessionRead]:
        """Change the caller's password; every other session is signed out (cookie mode as for login)."""
        session = await accounts.change_password(principal, data, address=client_address)
        return answer(accounts.ctx.settings, session, cookie=wants_cookie(request))


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
        request: Request[Any, Any, Any],
        data: JSONBody[InviteAccept],
        accounts: NamedDependency[AccountService],
        client_address: NamedDependency[str],
    ) -> Response[SessionRead]:
        """Accept an invite: creates the account, or links an existing one (its password required).

        Cookie mode as for login.
        """
        session = await accounts.accept_invite(data, address=client_address)
        return answer(accounts.ctx.settings, session, cookie=wants_cookie(request))


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


def _sign_in_page(code: str) -> Redirect:
    return Redirect(f"{SIGN_IN_PAGE}?{urlencode({'sso_error': code})}", status_code=302)


class SsoController(Controller):
    """Single sign-on with the deployment's OpenID Connect provider (when ``SDR_OIDC_ISSUER`` is set)."""

    path = f"{PREFIX}/sso"
    tags = ["auth"]
    opt = PEOPLE_ONLY

    @get("/", opt=PUBLIC, operation_id="GetSso")
    async def sso(self, auth: NamedDependency[AuthContext]) -> SsoRead:
        """Whether single sign-on is on, and the label of its button."""
        settings = auth.settings
        return SsoRead(enabled=settings.oidc_enabled, name=settings.oidc_name if settings.oidc_enabled else None)

    @get("/start", opt=PUBLIC, operation_id="StartSso", status_code=302)
    async def start(
        self, state: State, next_path: Annotated[str | None, QueryParameter(name="next")] = None
    ) -> Redirect:
        """Send the browser to the provider (state, nonce and PKCE S256 kept server-side, single use).

        Failures land on the sign-in page with `?sso_error=<code>`.
        """
        provider: OidcProvider | None = state.oidc
        if provider is None:
            return _sign_in_page("sso_disabled")
        store: StateStore = state.sso_states
        key, pending = new_pending(next_path)
        try:
            url = await provider.authorize_url(key, pending)
            await store.put(key, pending)
        except SsoFailed as exc:
            log.warning("sso_failed", code=exc.code, reason=exc.detail)
            return _sign_in_page(exc.code)
        return Redirect(url, status_code=302)

    @get("/callback", opt=PUBLIC, operation_id="FinishSso", status_code=302)
    async def callback(
        self,
        state: State,
        accounts: NamedDependency[AccountService],
        client_address: NamedDependency[str],
        code: FromQuery[str | None] = None,
        error: FromQuery[str | None] = None,
        state_: Annotated[str | None, QueryParameter(name="state")] = None,
    ) -> Redirect:
        """The provider's answer: verify it, open a session (the refresh cookie), land on `next`.

        Only an existing user (by link or verified email) or an invited email signs in; every
        failure lands on the sign-in page with `?sso_error=<code>`.
        """
        provider: OidcProvider | None = state.oidc
        if provider is None:
            return _sign_in_page("sso_disabled")
        store: StateStore = state.sso_states
        pending = await store.take(state_) if state_ and len(state_) <= 200 else None
        if pending is None:
            return _sign_in_page("state_invalid")
        if error is not None or not code or len(code) > 4096:
            return _sign_in_page("provider_refused")
        try:
            identity = await provider.exchange(code, pending)
            session = await accounts.sso_sign_in(
                issuer=identity.issuer,
                subject=identity.subject,
                email=identity.email,
                name=identity.name,
                address=client_address,
            )
        except SsoFailed as exc:
            log.warning("sso_failed", code=exc.code, reason=exc.detail)
            return _sign_in_page(exc.code)
        except TooManyRequests:
            return _sign_in_page("too_many_attempts")
        if session is None:
            return _sign_in_page("not_invited")
        settings = accounts.ctx.settings
        return Redirect(
            pending.next_path,
            status_code=302,
            cookies=session_cookies(settings, session.refresh_token or "", session.refresh_expires_in),
            headers={"cache-control": "no-store"},
        )


ROUTE_HANDLERS = [
    SessionController,
    SsoController,
    MemberController,
    InviteController,
    ApiKeyController,
    SigningKeyController,
]
