"""The rules of identity: accounts, sessions, members, invites and API keys."""

from __future__ import annotations

import hmac
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.exc import IntegrityError
from sqlmodel.ext.asyncio.session import AsyncSession

from libs.db.base import utcnow
from libs.db.models.auth import ApiKey, Invite, Membership, OidcIdentity, RefreshToken, User
from libs.db.models.tenancy import Organization
from libs.db.session import Database
from libs.errors import Forbidden, Invalid
from libs.pagination import Page, make_page
from libs.scopes import SCOPES, unknown_scopes
from libs.security import (
    ISSUED_MS_CLAIM,
    LEEWAY_SECONDS,
    Principal,
    RevocationList,
    Role,
    api_key_record,
    bearer_token,
    membership_record,
    now_ms,
    session_record,
    user_record,
)
from services.auth.errors import (
    AlreadyMember,
    ApiKeyNotFound,
    EmailTaken,
    InvalidApiKey,
    InvalidCredentials,
    InvalidRefreshToken,
    InviteInvalid,
    InviteNotFound,
    LastOwner,
    MemberNotFound,
    NoOrganization,
)
from services.auth.opaque import SecretKind, display_prefix, hash_secret, is_well_formed, new_secret
from services.auth.passwords import Passwords
from services.auth.repository import AuthRepository
from services.auth.schemas import (
    PASSWORD_MIN_LENGTH,
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyRead,
    ApiKeyToken,
    ApiKeyUpdate,
    InviteAccept,
    InviteCreate,
    InviteCreated,
    InviteRead,
    InviteStatus,
    LoginRequest,
    MemberRead,
    MembershipSummary,
    MeRead,
    OrganizationRead,
    PasswordChange,
    SessionRead,
    SignupCreate,
    TokenPair,
    UserRead,
    canonical_email,
    normalize_email,
)
from services.auth.settings import AuthSettings
from services.auth.signing import SigningKeys, new_token_id
from services.auth.throttle import LoginThrottle, account_subject, address_subject

log = structlog.get_logger(__name__)


@dataclass
class AuthContext:
    """What every auth service needs for the life of the process."""

    settings: AuthSettings
    passwords: Passwords
    keys: SigningKeys
    database: Database | None = None
    throttle: LoginThrottle | None = None
    revocations: RevocationList | None = None

    @property
    def db(self) -> Database:
        """The database (set at startup)."""
        assert self.database is not None, "the app has not started"
        return self.database

    @property
    def login_throttle(self) -> LoginThrottle:
        """The failed-login throttle (set at startup)."""
        assert self.throttle is not None, "the app has not started"
        return self.throttle

    async def revoke(self, *records: str) -> None:
        """Void every access token of ``records`` issued until now, at every verifier within a request.

        Written before the change commits: when Redis refuses, the request fails (503) and the
        change rolls back; a record whose change then fails to commit only costs a refresh.

        Raises:
            Unavailable: the records could not be written.
        """
        assert self.revocations is not None, "the app has not started"
        await self.revocations.revoke(records, ttl=self.settings.access_token_ttl + LEEWAY_SECONDS + 60)


def _user_read(user: User) -> UserRead:
    return UserRead(id=user.id, email=user.email, name=user.name, operator=user.operator)


def _member_read(membership: Membership, user: User) -> MemberRead:
    return MemberRead(
        id=membership.id,
        user_id=user.id,
        email=user.email,
        name=user.name,
        role=Role(membership.role),
        created_at=membership.created_at,
        updated_at=membership.updated_at,
    )


def _invite_status(invite: Invite, now: datetime) -> InviteStatus:
    if invite.accepted_at is not None:
        return InviteStatus.ACCEPTED
    if invite.revoked_at is not None:
        return InviteStatus.REVOKED
    return InviteStatus.EXPIRED if invite.expires_at <= now else InviteStatus.PENDING


def _invite_read(invite: Invite, now: datetime) -> InviteRead:
    return InviteRead(
        id=invite.id,
        email=invite.email,
        role=Role(invite.role),
        status=_invite_status(invite, now),
        invited_by=invite.invited_by,
        created_at=invite.created_at,
        expires_at=invite.expires_at,
        accepted_at=invite.accepted_at,
        revoked_at=invite.revoked_at,
    )


def _api_key_read(key: ApiKey) -> ApiKeyRead:
    return ApiKeyRead(
        id=key.id,
        name=key.name,
        prefix=key.prefix,
        scopes=list(key.scopes),
        role=Role(key.role),
        created_by=key.created_by,
        created_at=key.created_at,
        expires_at=key.expires_at,
        last_used_at=key.last_used_at,
        revoked_at=key.revoked_at,
    )


def _weaker(a: Role, b: Role) -> Role:
    return a if a.rank <= b.rank else b


class TokenIssuer:
    """Mint access tokens and open refresh-token sessions."""

    def __init__(self, ctx: AuthContext, session: AsyncSession) -> None:
        self.ctx = ctx
        self.session = session
        self.repo = AuthRepository(session)

    async def access_token(
        self,
        *,
        user_id: uuid.UUID,
        org_id: uuid.UUID,
        role: Role,
        operator: bool,
        ttl: int | None = None,
        **extra: Any,
    ) -> str:
        """Sign an access token with the claims of the contract (``extra`` adds ``sid``, ``scopes``, ``akid``)."""
        settings = self.ctx.settings
        issued_ms = now_ms()
        now = issued_ms // 1000
        claims: dict[str, Any] = {
            "iss": settings.jwt_issuer,
            "aud": settings.jwt_audience,
            "sub": str(user_id),
            "org": str(org_id),
            "role": role.value,
            "op": operator,
            "iat": now,
            ISSUED_MS_CLAIM: issued_ms,
            "nbf": now,
            "exp": now + (ttl or settings.access_token_ttl),
            "jti": new_token_id(),
            **extra,
        }
        return await self.ctx.keys.sign(self.session, claims)

    async def pair(self, user: User, membership: Membership, *, family_id: uuid.UUID | None = None) -> TokenPair:
        """Issue an access token and a new refresh token (in ``family_id``, or a new family)."""
        settings = self.ctx.settings
        family = family_id or uuid.uuid4()
        refresh = new_secret(SecretKind.REFRESH_TOKEN)
        await self.repo.add(
            RefreshToken(
                org_id=membership.org_id,
                user_id=user.id,
                family_id=family,
                token_hash=hash_secret(refresh),
                expires_at=utcnow() + timedelta(seconds=settings.refresh_token_ttl),
            )
        )
        access = await self.access_token(
            user_id=user.id,
            org_id=membership.org_id,
            role=Role(membership.role),
            operator=user.operator,
            sid=str(family),
        )
        return TokenPair(
            access_token=access,
            expires_in=settings.access_token_ttl,
            refresh_token=refresh,
            refresh_expires_in=settings.refresh_token_ttl,
        )

    async def session_for(self, user: User, membership: Membership) -> SessionRead:
        """Open a session and describe it."""
        organization = await self.repo.organization(membership.org_id)
        assert organization is not None
        pair = await self.pair(user, membership)
        return SessionRead(
            **pair.model_dump(),
            user=_user_read(user),
            organization=OrganizationRead(id=organization.id, name=organization.name),
            role=Role(membership.role),
        )


class RefreshService:
    """Rotate refresh tokens, each rotation in a transaction of its own."""

    def __init__(self, ctx: AuthContext) -> None:
        self.ctx = ctx

    async def refresh(self, token: str) -> TokenPair:
        """Spend a refresh token and issue a new pair; the new token joins the old one's family.

        Presenting a token that was already rotated revokes the whole family: the server
        cannot tell the client from a thief, so both must sign in again. The claim, the new
        token and any revocation commit together before the answer, so a 401 cannot undo
        the revocation, and two concurrent uses of one token let exactly one through.

        Raises:
            InvalidRefreshToken: unknown, expired, revoked or reused token.
        """
        if not is_well_formed(token, SecretKind.REFRESH_TOKEN):
            raise InvalidRefreshToken()
        token_hash = hash_secret(token)
        now = utcnow()
        issued: TokenPair | None = None
        reused: RefreshToken | None = None
        revoked_family: uuid.UUID | None = None
        revoked = 0
        async with self.ctx.db.system() as session:
            repo = AuthRepository(session)
            row = await repo.claim_refresh_token(token_hash, now)
            if row is None:
                known = await repo.refresh_token(token_hash)
                if known is not None and known.used_at is not None:
                    reused = known
                    revoked = await repo.revoke_family(known.family_id, now)
                    revoked_family = known.family_id
            else:
                user = await repo.user(row.user_id)
                membership = await repo.membership(org_id=row.org_id, user_id=row.user_id)
                if user is None or membership is None:
                    await repo.revoke_family(row.family_id, now)
                    revoked_family = row.family_id
                else:
                    issued = await TokenIssuer(self.ctx, session).pair(user, membership, family_id=row.family_id)
        if reused is not None:
            log.warning(
                "refresh_token_reused", user_id=str(reused.user_id), family_id=str(reused.family_id), revoked=revoked
            )
        if revoked_family is not None:
            # After the commit: the family is dead whatever Redis says; its access tokens die with it now.
            await self.ctx.revoke(session_record(str(revoked_family)))
        if issued is None:
            raise InvalidRefreshToken()
        return issued


class AccountService:
    """Sign-up, sign-in, sessions and invites accepted: the flows that run before a token exists."""

    def __init__(self, session: AsyncSession, ctx: AuthContext) -> None:
        self.session = session
        self.ctx = ctx
        self.repo = AuthRepository(session)
        self.tokens = TokenIssuer(ctx, session)

    async def signup(self, data: SignupCreate) -> SessionRead:
        """Create an organization and its owner, and sign the owner in.

        Raises:
            EmailTaken: an account already uses the address.
        """
        email_normalized = data.email.lower()
        if await self.repo.user_by_email(email_normalized) is not None:
            raise EmailTaken("An account with this email already exists.")
        password_hash = await self.ctx.passwords.hash(data.password.get_secret_value())
        now = utcnow()
        organization = Organization(name=data.organization_name)
        user = User(
            email=data.email,
            email_normalized=email_normalized,
            name=data.name,
            password_hash=password_hash,
            password_changed_at=now,
        )
        membership = Membership(org_id=organization.id, user_id=user.id, role=Role.OWNER.value)
        try:
            async with self.session.begin_nested():
                await self.repo.add(organization, user)
                await self.repo.add(membership)
        except IntegrityError as exc:
            raise EmailTaken("An account with this email already exists.") from exc
        log.info("signed_up", user_id=str(user.id), org_id=str(organization.id))
        return await self.tokens.session_for(user, membership)

    async def _check_password(self, user: User | None, password: str) -> bool:
        if user is None or user.password_hash is None:
            await self.ctx.passwords.verify_dummy(password)
            return False
        if not await self.ctx.passwords.verify(user.password_hash, password):
            return False
        if self.ctx.passwords.needs_rehash(user.password_hash):
            user.password_hash = await self.ctx.passwords.hash(password)
            self.session.add(user)
            await self.session.flush()
            log.info("password_rehashed", user_id=str(user.id))
        return True

    async def _authenticate(self, email: str, password: str, address: str) -> User:
        """Return the user whose password this is, throttling failures per account and per address."""
        email_normalized = normalize_email(email)
        subjects = (account_subject(email_normalized), address_subject(address))
        throttle = self.ctx.login_throttle
        await throttle.check(*subjects)
        user = await self.repo.user_by_email(email_normalized)
        if not await self._check_password(user, password):
            await throttle.record_failure(*subjects)
            log.info("login_failed", known_account=user is not None)
            raise InvalidCredentials()
        assert user is not None
        await throttle.record_success(subjects[0])
        return user

    async def login(self, data: LoginRequest, *, address: str) -> SessionRead:
        """Sign in with email and password.

        Raises:
            InvalidCredentials: the same answer for an unknown email and a wrong password.
            TooManyRequests: the account or the address is locked out for a while.
            NoOrganization: the user belongs to no (such) organization.
        """
        user = await self._authenticate(data.email, data.password.get_secret_value(), address)
        if data.organization_id is not None:
            membership = await self.repo.membership(org_id=data.organization_id, user_id=user.id)
        else:
            membership = await self.repo.first_membership(user.id)
        if membership is None:
            raise NoOrganization("You are not a member of this organization.")
        log.info("logged_in", user_id=str(user.id), org_id=str(membership.org_id))
        return await self.tokens.session_for(user, membership)

    async def logout(self, token: str) -> None:
        """Revoke the session (the whole family) a refresh token belongs to; unknown tokens are ignored."""
        if not is_well_formed(token, SecretKind.REFRESH_TOKEN):
            return
        row = await self.repo.refresh_token(hash_secret(token))
        if row is not None:
            await self.repo.revoke_family(row.family_id, utcnow())
            await self.ctx.revoke(session_record(str(row.family_id)))
            log.info("logged_out", user_id=str(row.user_id), family_id=str(row.family_id))

    async def me(self, principal: Principal) -> MeRead:
        """Describe the caller and the organizations they may switch to."""
        user = await self.repo.user(principal.user_id)
        if user is None:
            raise InvalidCredentials()
        rows = await self.repo.organizations_of(user.id)
        current = next((o for m, o in rows if o.id == principal.org_id), None)
        if current is None:
            raise NoOrganization("You are no longer a member of this organization.")
        return MeRead(
            user=_user_read(user),
            organization=OrganizationRead(id=current.id, name=current.name),
            role=principal.role,
            operator=principal.operator,
            scopes=sorted(principal.scopes),
            api_key_id=principal.api_key_id,
            memberships=[
                MembershipSummary(organization_id=o.id, organization_name=o.name, role=Role(m.role)) for m, o in rows
            ],
        )

    async def switch(self, principal: Principal, org_id: uuid.UUID) -> SessionRead:
        """Open a session in another organization of the caller.

        Raises:
            NoOrganization: the caller is not a member there (a 404: other organizations stay unseen).
        """
        user = await self.repo.user(principal.user_id)
        membership = await self.repo.membership(org_id=org_id, user_id=principal.user_id)
        if user is None or membership is None:
            raise MemberNotFound("No such organization.")
        log.info("organization_switched", user_id=str(user.id), org_id=str(org_id))
        return await self.tokens.session_for(user, membership)

    async def change_password(self, principal: Principal, data: PasswordChange, *, address: str) -> SessionRead:
        """Change the caller's password, sign out every session, and open a new one."""
        user = await self.repo.user(principal.user_id)
        if user is None:
            raise InvalidCredentials()
        await self._authenticate(user.email_normalized, data.current_password.get_secret_value(), address)
        now = utcnow()
        user.password_hash = await self.ctx.passwords.hash(data.new_password.get_secret_value())
        user.password_changed_at = now
        self.session.add(user)
        revoked = await self.repo.revoke_sessions(user.id, now)
        membership = await self.repo.membership(org_id=principal.org_id, user_id=user.id)
        if membership is None:
            raise NoOrganization("You are no longer a member of this organization.")
        await self.ctx.revoke(user_record(user.id))  # before the new session: its token is issued after
        log.info("password_changed", user_id=str(user.id), sessions_revoked=revoked)
        return await self.tokens.session_for(user, membership)

    async def accept_invite(self, data: InviteAccept, *, address: str) -> SessionRead:
        """Accept an invite: create the user (or link an existing one) and open a session there.

        Raises:
            InviteInvalid: the token is unknown, used, revoked or expired.
            InvalidCredentials: the invitee has an account and the password is not theirs.
            Invalid: a new account's password is too short.
        """
        token = data.token.get_secret_value()
        if not is_well_formed(token, SecretKind.INVITE):
            raise InviteInvalid("This invite is not valid.")
        now = utcnow()
        invite = await self.repo.claim_invite(hash_secret(token), now)
        if invite is None:
            raise InviteInvalid("This invite is not valid.")
        password = data.password.get_secret_value()
        user = await self.repo.user_by_email(invite.email_normalized)
        if user is not None and user.password_hash is not None:
            user = await self._authenticate(invite.email_normalized, password, address)
        else:
            if len(password) < PASSWORD_MIN_LENGTH:
                raise Invalid(
                    errors=[
                        {"field": "password", "message": f"at least {PASSWORD_MIN_LENGTH} characters", "source": "body"}
                    ]
                )
            password_hash = await self.ctx.passwords.hash(password)
            if user is None:
                user = User(email=invite.email, email_normalized=invite.email_normalized, name=data.name)
            user.password_hash = password_hash
            user.password_changed_at = now
            await self.repo.add(user)
        membership = await self.repo.membership(org_id=invite.org_id, user_id=user.id)
        if membership is None:
            membership = Membership(org_id=invite.org_id, user_id=user.id, role=invite.role)
            await self.repo.add(membership)
        invite.accepted_by = user.id
        self.session.add(invite)
        log.info("invite_accepted", invite_id=str(invite.id), user_id=str(user.id), org_id=str(invite.org_id))
        return await self.tokens.session_for(user, membership)

    async def sso_sign_in(
        self, *, issuer: str, subject: str, email: str, name: str | None, address: str
    ) -> SessionRead | None:
        """Open a session for a verified provider identity; ``None`` when nobody may sign in with it.

        The user is the one linked to (issuer, subject); else the one with this (verified) email,
        who is then linked; else, when a pending invite names the email, a new user without a
        password joins the inviting organization. No one else gets an account (no open sign-up).
        """
        throttle = self.ctx.login_throttle
        await throttle.check(address_subject(address))
        now = utcnow()
        email_normalized = normalize_email(email)
        link = await self.repo.oidc_identity(issuer=issuer, subject=subject)
        user = await self.repo.user(link.user_id) if link is not None else None
        membership: Membership | None = None
        if user is None:
            user = await self.repo.user_by_email(email_normalized)
            if user is not None and await self.repo.oidc_identity_of(issuer=issuer, user_id=user.id) is not None:
                user = None  # the account is linked to another subject of this provider
        if user is None and link is None:
            pending = await self.repo.pending_invite(email_normalized, now)
            invite = await self.repo.claim_invite_by_id(pending.id, now) if pending is not None else None
            if invite is not None and await self.repo.user_by_email(email_normalized) is None:
                user = User(email=invite.email, email_normalized=invite.email_normalized, name=name)
                await self.repo.add(user)
                membership = Membership(org_id=invite.org_id, user_id=user.id, role=invite.role)
                await self.repo.add(membership)
                invite.accepted_by = user.id
                self.session.add(invite)
                log.info("invite_accepted", invite_id=str(invite.id), user_id=str(user.id), org_id=str(invite.org_id))
        if user is None:
            await throttle.record_failure(address_subject(address))
            log.info("sso_refused", known_link=link is not None)
            return None
        if link is None:
            link = OidcIdentity(user_id=user.id, issuer=issuer, subject=subject, email=email)
        link.email = email
        link.last_used_at = now
        try:
            async with self.session.begin_nested():
                await self.repo.add(link)
        except IntegrityError:
            log.info("sso_refused", known_link=True)
            return None
        membership = membership or await self.repo.first_membership(user.id)
        if membership is None:
            return None
        log.info("sso_signed_in", user_id=str(user.id), org_id=str(membership.org_id))
        return await self.tokens.session_for(user, membership)

    async def exchange_api_key(self, authorization: str | None) -> ApiKeyToken:
        """Trade ``Authorization: Bearer twk_...`` for a short-lived access token carrying its scopes.

        Raises:
            InvalidApiKey: unknown, malformed, revoked or expired key, or its creator left.
        """
        secret = bearer_token(authorization)
        if secret is None or not is_well_formed(secret, SecretKind.API_KEY):
            raise InvalidApiKey()
        key_hash = hash_secret(secret)
        key = await self.repo.api_key_by_hash(key_hash)
        now = utcnow()
        if (
            key is None
            or not hmac.compare_digest(key.key_hash, key_hash)
            or key.revoked_at is not None
            or (key.expires_at is not None and key.expires_at <= now)
        ):
            raise InvalidApiKey()
        creator = await self.repo.membership(org_id=key.org_id, user_id=key.created_by)
        if creator is None:
            raise InvalidApiKey()
        key.last_used_at = now
        self.session.add(key)
        ttl = self.ctx.settings.access_token_ttl
        access = await self.tokens.access_token(
            user_id=key.created_by,
            org_id=key.org_id,
            role=_weaker(Role(key.role), Role(creator.role)),
            operator=False,
            ttl=ttl,
            scopes=list(key.scopes),
            akid=str(key.id),
        )
        log.info("api_key_exchanged", api_key_id=str(key.id), org_id=str(key.org_id))
        return ApiKeyToken(access_token=access, expires_in=ttl)


class MemberService:
    """List members, change their roles, remove them; an organization always keeps an owner.

    A demotion or a removal voids the member's tokens in the organization at once (API-key
    tokens of keys they created included); a refresh brings the new role.
    """

    def __init__(self, session: AsyncSession, ctx: AuthContext) -> None:
        self.repo = AuthRepository(session)
        self.ctx = ctx

    async def list(self, principal: Principal, *, limit: int, cursor: str | None) -> Page[MemberRead]:
        """One page of the organization's members, newest first."""
        rows = await self.repo.members(principal.org_id, limit=limit, cursor=cursor)
        page = make_page([m for m, _ in rows], limit, lambda m: m)
        users = {m.id: u for m, u in rows}
        return Page[MemberRead](items=[_member_read(m, users[m.id]) for m in page.items], next_cursor=page.next_cursor)

    async def _get(self, principal: Principal, member_id: uuid.UUID) -> tuple[Membership, User]:
        found = await self.repo.member(org_id=principal.org_id, member_id=member_id)
        if found is None:
            raise MemberNotFound("No such member.")
        return found

    async def get(self, principal: Principal, member_id: uuid.UUID) -> MemberRead:
        """One member."""
        return _member_read(*await self._get(principal, member_id))

    async def change_role(self, principal: Principal, member_id: uuid.UUID, role: Role) -> MemberRead:
        """Change a member's role; only an owner grants or takes away the owner role.

        Raises:
            MemberNotFound: no such member here.
            Forbidden: an admin touching the owner role.
            LastOwner: the organization would be left without an owner.
        """
        await self.repo.lock_organization(principal.org_id)
        membership, user = await self._get(principal, member_id)
        current = Role(membership.role)
        if Role.OWNER in (role, current):
            principal.require(Role.OWNER)
        if current is Role.OWNER and role is not Role.OWNER and await self.repo.count_owners(principal.org_id) <= 1:
            raise LastOwner("An organization must keep an owner; make someone else owner first.")
        membership.role = role.value
        membership.updated_at = utcnow()
        await self.repo.add(membership)
        if role.rank < current.rank:
            await self.ctx.revoke(membership_record(membership.org_id, membership.user_id))
        log.info("member_role_changed", member_id=str(membership.id), role=role.value, previous=current.value)
        return _member_read(membership, user)

    async def remove(self, principal: Principal, member_id: uuid.UUID) -> None:
        """Remove a member (anyone may leave; removing others takes an admin, an owner for owners).

        The member's sessions in this organization and the API keys they created are revoked.
        """
        await self.repo.lock_organization(principal.org_id)
        membership, _ = await self._get(principal, member_id)
        role = Role(membership.role)
        if membership.user_id != principal.user_id:
            principal.require(Role.OWNER if role is Role.OWNER else Role.ADMIN)
        if role is Role.OWNER and await self.repo.count_owners(principal.org_id) <= 1:
            raise LastOwner("An organization must keep an owner; make someone else owner first.")
        now = utcnow()
        await self.repo.delete_membership(membership)
        sessions = await self.repo.revoke_sessions(membership.user_id, now, org_id=principal.org_id)
        keys = await self.repo.revoke_api_keys_of(org_id=principal.org_id, user_id=membership.user_id, now=now)
        await self.ctx.revoke(membership_record(principal.org_id, membership.user_id))
        log.info("member_removed", member_id=str(membership.id), sessions_revoked=sessions, api_keys_revoked=keys)


class InviteService:
    """Invite people by email; the token is single-use, expiring, and stored only as a hash."""

    def __init__(self, session: AsyncSession, ctx: AuthContext) -> None:
        self.repo = AuthRepository(session)
        self.ctx = ctx

    async def create(self, principal: Principal, data: InviteCreate) -> InviteCreated:
        """Invite an address; a pending invite to the same address is replaced.

        Raises:
            Forbidden: only an owner invites an owner.
            AlreadyMember: the address already belongs to a member.
        """
        if data.role is Role.OWNER:
            principal.require(Role.OWNER)
        email_normalized = data.email.lower()
        user = await self.repo.user_by_email(email_normalized)
        if user is not None and await self.repo.membership(org_id=principal.org_id, user_id=user.id) is not None:
            raise AlreadyMember("This person is already a member.")
        now = utcnow()
        await self.repo.revoke_pending_invites(org_id=principal.org_id, email_normalized=email_normalized, now=now)
        token = new_secret(SecretKind.INVITE)
        invite = Invite(
            org_id=principal.org_id,
            email=data.email,
            email_normalized=email_normalized,
            role=data.role.value,
            token_hash=hash_secret(token),
            invited_by=principal.user_id if principal.api_key_id is None else None,
            created_at=now,
            expires_at=now + timedelta(seconds=self.ctx.settings.invite_ttl),
        )
        await self.repo.add(invite)
        log.info("invite_created", invite_id=str(invite.id), role=invite.role)
        return InviteCreated(**_invite_read(invite, now).model_dump(), token=token)

    async def list(self, principal: Principal, *, limit: int, cursor: str | None) -> Page[InviteRead]:
        """One page of the organization's invites, newest first."""
        now = utcnow()
        rows = await self.repo.invites(principal.org_id, limit=limit, cursor=cursor)
        return make_page(rows, limit, lambda i: _invite_read(i, now))

    async def _get(self, principal: Principal, invite_id: uuid.UUID) -> Invite:
        invite = await self.repo.invite(org_id=principal.org_id, invite_id=invite_id)
        if invite is None:
            raise InviteNotFound("No such invite.")
        return invite

    async def get(self, principal: Principal, invite_id: uuid.UUID) -> InviteRead:
        """One invite."""
        return _invite_read(await self._get(principal, invite_id), utcnow())

    async def revoke(self, principal: Principal, invite_id: uuid.UUID) -> None:
        """Revoke an invite so its token no longer works (revoking twice is harmless)."""
        invite = await self._get(principal, invite_id)
        if invite.accepted_at is None and invite.revoked_at is None:
            invite.revoked_at = utcnow()
            await self.repo.add(invite)
            log.info("invite_revoked", invite_id=str(invite.id))


class ApiKeyService:
    """Per-organization API keys: shown once, stored as a hash, scoped, revocable."""

    def __init__(self, session: AsyncSession, ctx: AuthContext) -> None:
        self.repo = AuthRepository(session)
        self.ctx = ctx

    async def create(self, principal: Principal, data: ApiKeyCreate) -> ApiKeyCreated:
        """Create a key with scopes of the closed set; its role may not exceed the creator's.

        Raises:
            Invalid: a scope is unknown (each one named, the known ones listed), or the expiry is past.
            Forbidden: the role asked for is above the caller's.
        """
        now = utcnow()
        known = ", ".join(SCOPES)
        errors: list[dict[str, Any]] = [
            {
                "field": f"scopes[{i}]",
                "message": f"unknown scope {scope!r}; known scopes: {known}",
                "value": scope,
                "source": "body",
            }
            for i, scope in unknown_scopes(data.scopes)
        ]
        if data.expires_at is not None and data.expires_at <= now:
            errors.append({"field": "expires_at", "message": "must be in the future", "source": "body"})
        if errors:
            raise Invalid(errors=errors, known_scopes=list(SCOPES))
        principal.require(data.role)
        secret = new_secret(SecretKind.API_KEY)
        key = ApiKey(
            org_id=principal.org_id,
            name=data.name,
            prefix=display_prefix(secret),
            key_hash=hash_secret(secret),
            scopes=sorted(set(data.scopes)),
            role=data.role.value,
            created_by=principal.user_id,
            created_at=now,
            expires_at=data.expires_at,
        )
        await self.repo.add(key)
        log.info("api_key_created", api_key_id=str(key.id), scopes=key.scopes)
        return ApiKeyCreated(**_api_key_read(key).model_dump(), key=secret)

    async def list(self, principal: Principal, *, limit: int, cursor: str | None) -> Page[ApiKeyRead]:
        """One page of the organization's API keys, newest first."""
        rows = await self.repo.api_keys(principal.org_id, limit=limit, cursor=cursor)
        return make_page(rows, limit, _api_key_read)

    async def _get(self, principal: Principal, key_id: uuid.UUID) -> ApiKey:
        key = await self.repo.api_key(org_id=principal.org_id, key_id=key_id)
        if key is None:
            raise ApiKeyNotFound("No such API key.")
        return key

    async def get(self, principal: Principal, key_id: uuid.UUID) -> ApiKeyRead:
        """One API key."""
        return _api_key_read(await self._get(principal, key_id))

    async def update(self, principal: Principal, key_id: uuid.UUID, data: ApiKeyUpdate) -> ApiKeyRead:
        """Rename a key."""
        key = await self._get(principal, key_id)
        key.name = data.name
        await self.repo.add(key)
        return _api_key_read(key)

    async def revoke(self, principal: Principal, key_id: uuid.UUID) -> None:
        """Revoke a key: the next exchange with it is refused, and the tokens it was exchanged for die now."""
        key = await self._get(principal, key_id)
        if key.revoked_at is None:
            key.revoked_at = utcnow()
            await self.repo.add(key)
            await self.ctx.revoke(api_key_record(key.id))
            log.info("api_key_revoked", api_key_id=str(key.id))


OPERATIONS_ORGANIZATION = "Tidewater operations"


async def make_operator(session: AsyncSession, *, email: str, invite_ttl: int) -> tuple[User, str | None]:
    """Flag ``email``'s user as an operator, creating them (and an invite to set a password) if new.

    Returns the user and, for a new user, the one-time invite token. A new operator gets an
    organization of their own, since every token names an organization.

    Raises:
        ValueError: ``email`` is not a valid address.
    """
    canonical = canonical_email(email)
    repo = AuthRepository(session)
    user = await repo.user_by_email(canonical.lower())
    if user is not None:
        user.operator = True
        await repo.add(user)
        log.info("operator_flagged", user_id=str(user.id))
        return user, None
    now = utcnow()
    organization = Organization(name=OPERATIONS_ORGANIZATION)
    user = User(email=canonical, email_normalized=canonical.lower(), operator=True)
    token = new_secret(SecretKind.INVITE)
    await repo.add(organization, user)
    await repo.add(
        Membership(org_id=organization.id, user_id=user.id, role=Role.OWNER.value),
        Invite(
            org_id=organization.id,
            email=canonical,
            email_normalized=canonical.lower(),
            role=Role.OWNER.value,
            token_hash=hash_secret(token),
            created_at=now,
            expires_at=now + timedelta(seconds=invite_ttl),
        ),
    )
    log.info("operator_created", user_id=str(user.id), org_id=str(organization.id))
    return user, token


def forbid_api_keys(principal: Principal) -> None:
    """Raise :class:`Forbidden` for API-key tokens (they may not manage people, keys or sessions)."""
    if principal.api_key_id is not None:
        raise Forbidden("API keys may not do this; sign in as a person.")


__all__: Sequence[str] = [
    "AccountService",
    "ApiKeyService",
    "AuthContext",
    "InviteService",
    "MemberService",
    "RefreshService",
    "TokenIssuer",
    "forbid_api_keys",
    "make_operator",
]
