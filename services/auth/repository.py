"""Every query of the auth service; ``claim_*`` methods are conditional updates."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from libs.db.models.auth import ApiKey, Invite, Membership, OidcIdentity, RefreshToken, User
from libs.db.models.tenancy import Organization
from libs.pagination import keyset


class AuthRepository:
    """Queries over users, memberships, invites, refresh tokens and API keys."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, *rows: Any) -> None:
        """Insert ``rows`` and flush, so constraint violations surface here."""
        self.session.add_all(rows)
        await self.session.flush()

    # Users and memberships

    async def user(self, user_id: uuid.UUID) -> User | None:
        """Return the user ``user_id``."""
        return await self.session.get(User, user_id)

    async def user_by_email(self, email_normalized: str) -> User | None:
        """Return the user with this normalised email."""
        stmt = select(User).where(User.email_normalized == email_normalized)
        return (await self.session.exec(stmt)).first()

    async def organization(self, org_id: uuid.UUID) -> Organization | None:
        """Return the organization ``org_id``."""
        return await self.session.get(Organization, org_id)

    async def lock_organization(self, org_id: uuid.UUID) -> None:
        """Lock the organization's row: membership changes of one organization run one at a time."""
        stmt = select(Organization.id).where(Organization.id == org_id).with_for_update()
        await self.session.exec(stmt)

    async def membership(self, *, org_id: uuid.UUID, user_id: uuid.UUID) -> Membership | None:
        """Return the user's membership of the organization."""
        stmt = select(Membership).where(Membership.org_id == org_id, Membership.user_id == user_id)
        return (await self.session.exec(stmt)).first()

    async def first_membership(self, user_id: uuid.UUID) -> Membership | None:
        """Return the user's oldest membership (the organization a plain login opens)."""
        stmt = (
            select(Membership)
            .where(Membership.user_id == user_id)
            .order_by(col(Membership.created_at), col(Membership.id))
            .limit(1)
        )
        return (await self.session.exec(stmt)).first()

    async def organizations_of(self, user_id: uuid.UUID) -> Sequence[tuple[Membership, Organization]]:
        """Return every membership of the user with its organization, oldest first."""
        stmt = (
            select(Membership, Organization)
            .join(Organization, col(Organization.id) == col(Membership.org_id))
            .where(Membership.user_id == user_id)
            .order_by(col(Membership.created_at), col(Membership.id))
        )
        return (await self.session.exec(stmt)).all()

    async def members(self, org_id: uuid.UUID, *, limit: int, cursor: str | None) -> Sequence[tuple[Membership, User]]:
        """Return up to ``limit + 1`` members of the organization, newest first."""
        stmt = (
            select(Membership, User)
            .join(User, col(User.id) == col(Membership.user_id))
            .where(Membership.org_id == org_id)
        )
        after = keyset(Membership, cursor)
        if after is not None:
            stmt = stmt.where(after)
        stmt = stmt.order_by(col(Membership.created_at).desc(), col(Membership.id).desc()).limit(limit + 1)
        return (await self.session.exec(stmt)).all()

    async def member(self, *, org_id: uuid.UUID, member_id: uuid.UUID) -> tuple[Membership, User] | None:
        """Return the membership ``member_id`` of the organization with its user."""
        stmt = (
            select(Membership, User)
            .join(User, col(User.id) == col(Membership.user_id))
            .where(Membership.org_id == org_id, Membership.id == member_id)
        )
        row = (await self.session.exec(stmt)).first()
        return (row[0], row[1]) if row else None

    async def count_owners(self, org_id: uuid.UUID) -> int:
        """Return how many owners the organization has."""
        stmt = (
            select(sa.func.count())
            .select_from(Membership)
            .where(Membership.org_id == org_id, Membership.role == "owner")
        )
        return int((await self.session.exec(stmt)).one())

    async def delete_membership(self, membership: Membership) -> None:
        """Remove a membership."""
        await self.session.delete(membership)
        await self.session.flush()

    # Refresh tokens

    async def claim_refresh_token(self, token_hash: str, now: datetime) -> RefreshToken | None:
        """Mark a live refresh token used and return it; ``None`` if it is unknown, used, revoked or expired."""
        stmt = (
            sa.update(RefreshToken)
            .where(
                col(RefreshToken.token_hash) == token_hash,
                col(RefreshToken.used_at).is_(None),
                col(RefreshToken.revoked_at).is_(None),
                col(RefreshToken.expires_at) > now,
            )
            .values(used_at=now)
            .returning(RefreshToken)
        )
        return (await self.session.exec(stmt)).scalars().first()

    async def refresh_token(self, token_hash: str) -> RefreshToken | None:
        """Return the refresh token with this hash, whatever its state."""
        stmt = select(RefreshToken).where(RefreshToken.token_hash == token_hash)
        return (await self.session.exec(stmt)).first()

    async def revoke_family(self, family_id: uuid.UUID, now: datetime) -> int:
        """Revoke every token of a family; return how many were live."""
        stmt = (
            sa.update(RefreshToken)
            .where(col(RefreshToken.family_id) == family_id, col(RefreshToken.revoked_at).is_(None))
            .values(revoked_at=now)
        )
        return int((await self.session.exec(stmt)).rowcount)

    async def revoke_sessions(self, user_id: uuid.UUID, now: datetime, *, org_id: uuid.UUID | None = None) -> int:
        """Revoke every refresh token of the user (in one organization, if given)."""
        conditions = [col(RefreshToken.user_id) == user_id, col(RefreshToken.revoked_at).is_(None)]
        if org_id is not None:
            conditions.append(col(RefreshToken.org_id) == org_id)
        stmt = sa.update(RefreshToken).where(*conditions).values(revoked_at=now)
        return int((await self.session.exec(stmt)).rowcount)

    # Invites

    async def invites(self, org_id: uuid.UUID, *, limit: int, cursor: str | None) -> Sequence[Invite]:
        """Return up to ``limit + 1`` invites of the organization, newest first."""
        stmt = select(Invite).where(Invite.org_id == org_id)
        after = keyset(Invite, cursor)
        if after is not None:
            stmt = stmt.where(after)
        stmt = stmt.order_by(col(Invite.created_at).desc(), col(Invite.id).desc()).limit(limit + 1)
        return (await self.session.exec(stmt)).all()

    async def invite(self, *, org_id: uuid.UUID, invite_id: uuid.UUID) -> Invite | None:
        """Return the invite ``invite_id`` of the organization."""
        stmt = select(Invite).where(Invite.org_id == org_id, Invite.id == invite_id)
        return (await self.session.exec(stmt)).first()

    async def revoke_pending_invites(self, *, org_id: uuid.UUID, email_normalized: str, now: datetime) -> None:
        """Revoke the organization's pending invites for an address (a new invite replaces them)."""
        stmt = (
            sa.update(Invite)
            .where(
                col(Invite.org_id) == org_id,
                col(Invite.email_normalized) == email_normalized,
                col(Invite.accepted_at).is_(None),
                col(Invite.revoked_at).is_(None),
            )
            .values(revoked_at=now)
        )
        await self.session.exec(stmt)

    async def claim_invite(self, token_hash: str, now: datetime) -> Invite | None:
        """Mark a pending, unexpired invite accepted and return it; ``None`` otherwise."""
        stmt = (
            sa.update(Invite)
            .where(
                col(Invite.token_hash) == token_hash,
                col(Invite.accepted_at).is_(None),
                col(Invite.revoked_at).is_(None),
                col(Invite.expires_at) > now,
            )
            .values(accepted_at=now)
            .returning(Invite)
        )
        return (await self.session.exec(stmt)).scalars().first()

    # API keys

    async def api_keys(self, org_id: uuid.UUID, *, limit: int, cursor: str | None) -> Sequence[ApiKey]:
        """Return up to ``limit + 1`` API keys of the organization, newest first."""
        stmt = select(ApiKey).where(ApiKey.org_id == org_id)
        after = keyset(ApiKey, cursor)
        if after is not None:
            stmt = stmt.where(after)
        stmt = stmt.order_by(col(ApiKey.created_at).desc(), col(ApiKey.id).desc()).limit(limit + 1)
        return (await self.session.exec(stmt)).all()

    async def api_key(self, *, org_id: uuid.UUID, key_id: uuid.UUID) -> ApiKey | None:
        """Return the API key ``key_id`` of the organization."""
        stmt = select(ApiKey).where(ApiKey.org_id == org_id, ApiKey.id == key_id)
        return (await self.session.exec(stmt)).first()

    async def api_key_by_hash(self, key_hash: str) -> ApiKey | None:
        """Return the API key with this hash (any organization: the key names its own)."""
        stmt = select(ApiKey).where(ApiKey.key_hash == key_hash)
        return (await self.session.exec(stmt)).first()

    async def revoke_api_keys_of(self, *, org_id: uuid.UUID, user_id: uuid.UUID, now: datetime) -> int:
        """Revoke the live API keys a user created in the organization."""
        stmt = (
            sa.update(ApiKey)
            .where(col(ApiKey.org_id) == org_id, col(ApiKey.created_by) == user_id, col(ApiKey.revoked_at).is_(None))
            .values(revoked_at=now)
        )
        return int((await self.session.exec(stmt)).rowcount)

    # OpenID Connect identities

    async def oidc_identity(self, *, issuer: str, subject: str) -> OidcIdentity | None:
        """Return the link of a provider subject to its user."""
        stmt = select(OidcIdentity).where(OidcIdentity.issuer == issuer, OidcIdentity.subject == subject)
        return (await self.session.exec(stmt)).first()

    async def oidc_identity_of(self, *, issuer: str, user_id: uuid.UUID) -> OidcIdentity | None:
        """Return the user's link at an issuer, if any."""
        stmt = select(OidcIdentity).where(OidcIdentity.issuer == issuer, OidcIdentity.user_id == user_id)
        return (await self.session.exec(stmt)).first()

    async def pending_invite(self, email_normalized: str, now: datetime) -> Invite | None:
        """Return the newest pending, unexpired invite for an address (any organization)."""
        stmt = (
            select(Invite)
            .where(
                Invite.email_normalized == email_normalized,
                col(Invite.accepted_at).is_(None),
                col(Invite.revoked_at).is_(None),
                col(Invite.expires_at) > now,
            )
            .order_by(col(Invite.created_at).desc(), col(Invite.id).desc())
            .limit(1)
        )
        return (await self.session.exec(stmt)).first()

    async def claim_invite_by_id(self, invite_id: uuid.UUID, now: datetime) -> Invite | None:
        """Mark the invite ``invite_id`` accepted if still pending and return it; ``None`` otherwise."""
        stmt = (
            sa.update(Invite)
            .where(
                col(Invite.id) == invite_id,
                col(Invite.accepted_at).is_(None),
                col(Invite.revoked_at).is_(None),
                col(Invite.expires_at) > now,
            )
            .values(accepted_at=now)
            .returning(Invite)
        )
        return (await self.session.exec(stmt)).scalars().first()
