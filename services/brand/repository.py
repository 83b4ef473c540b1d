"""Every query of the brand service; each one filters by ``org_id`` (row-level security is the second lock)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from libs.db.base import utcnow
from libs.db.models.brand import Brand, Mailbox, MailboxState, ProviderCredential, Sender
from libs.pagination import keyset


class BrandRepository:
    """Brands, senders and provider credentials of one organization."""

    def __init__(self, session: AsyncSession, org_id: uuid.UUID) -> None:
        self.session = session
        self.org_id = org_id

    # brands ------------------------------------------------------------------------------

    async def get_brand(self, brand_id: uuid.UUID) -> Brand | None:
        """Return the brand or None when it is not this organization's."""
        query = select(Brand).where(Brand.id == brand_id, Brand.org_id == self.org_id)
        return (await self.session.exec(query)).first()

    async def list_brands(self, *, cursor: str | None, limit: int, include_archived: bool) -> Sequence[Brand]:
        """Return up to ``limit + 1`` brands after ``cursor``, newest first."""
        query = select(Brand).where(Brand.org_id == self.org_id)
        if not include_archived:
            query = query.where(col(Brand.archived_at).is_(None))
        after = keyset(Brand, cursor)
        if after is not None:
            query = query.where(after)
        query = query.order_by(col(Brand.created_at).desc(), col(Brand.id).desc()).limit(limit + 1)
        return (await self.session.exec(query)).all()

    async def add(self, row: Brand | Sender | ProviderCredential) -> None:
        """Insert a new row (its id is set by the application)."""
        self.session.add(row)
        await self.session.flush()

    async def claim_update(self, model: Any, row_id: uuid.UUID, version: int, values: dict[str, Any]) -> Any | None:
        """Apply ``values`` if the row is still at ``version``; bump the version; None if it moved on."""
        statement = (
            sa.update(model)
            .where(model.id == row_id, model.org_id == self.org_id, model.version == version)
            .values(**values, version=model.version + 1, updated_at=utcnow())
            .returning(model)
            .execution_options(synchronize_session=False, populate_existing=True)
        )
        return (await self.session.exec(statement)).scalars().first()

    async def delete_brand(self, brand_id: uuid.UUID) -> bool:
        """Delete the brand; False when something (a campaign) still references it."""
        try:
            async with self.session.begin_nested():
                await self.session.exec(
                    sa.delete(Brand).where(col(Brand.id) == brand_id, col(Brand.org_id) == self.org_id)
                )
        except IntegrityError:
            return False
        return True

    # senders -----------------------------------------------------------------------------

    async def get_sender(self, brand_id: uuid.UUID, sender_id: uuid.UUID) -> Sender | None:
        """Return the sender of this brand, or None."""
        query = select(Sender).where(Sender.id == sender_id, Sender.brand_id == brand_id, Sender.org_id == self.org_id)
        return (await self.session.exec(query)).first()

    async def list_senders(self, brand_id: uuid.UUID, *, cursor: str | None, limit: int) -> Sequence[Sender]:
        """Return up to ``limit + 1`` senders of the brand after ``cursor``, newest first."""
        query = select(Sender).where(Sender.brand_id == brand_id, Sender.org_id == self.org_id)
        after = keyset(Sender, cursor)
        if after is not None:
            query = query.where(after)
        query = query.order_by(col(Sender.created_at).desc(), col(Sender.id).desc()).limit(limit + 1)
        return (await self.session.exec(query)).all()

    async def all_senders(self, brand_id: uuid.UUID) -> Sequence[Sender]:
        """Return every sender of the brand (readiness)."""
        query = select(Sender).where(Sender.brand_id == brand_id, Sender.org_id == self.org_id)
        return (await self.session.exec(query)).all()

    async def delete_sender(self, sender_id: uuid.UUID) -> None:
        """Delete the sender."""
        await self.session.exec(sa.delete(Sender).where(col(Sender.id) == sender_id, col(Sender.org_id) == self.org_id))

    async def record_verification(
        self, sender_id: uuid.UUID, version: int, *, result: dict[str, Any], verified_at: datetime | None
    ) -> Sender | None:
        """Store a verification outcome if the sender is still at ``version``."""
        return await self.claim_update(
            Sender, sender_id, version, {"last_verification": result, "verified_at": verified_at}
        )

    # mailboxes ---------------------------------------------------------------------------

    async def mailboxes_for(self, sender_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Mailbox]:
        """Return the mailbox rows of these senders, by sender id."""
        if not sender_ids:
            return {}
        query = select(Mailbox).where(col(Mailbox.sender_id).in_(list(sender_ids)), Mailbox.org_id == self.org_id)
        return {row.sender_id: row for row in (await self.session.exec(query)).all()}

    async def reset_mailbox(self, sender_id: uuid.UUID, *, folder: str, start_over: bool) -> None:
        """Make the sender's mailbox active again (new IMAP settings); ``start_over`` forgets its cursor."""
        now = utcnow()
        again: dict[str, Any] = {
            "state": MailboxState.ACTIVE.value,
            "paused_reason": None,
            "paused_at": None,
            "last_error": None,
            "folder": folder,
            "updated_at": now,
        }
        if start_over:
            again |= {"uidvalidity": None, "last_uid": 0, "last_event_id": None}
        statement = (
            pg_insert(Mailbox)
            .values(id=uuid.uuid4(), org_id=self.org_id, sender_id=sender_id, created_at=now, **again)
            .on_conflict_do_update(index_elements=["sender_id"], set_=again)
        )
        await self.session.exec(statement)

    async def delete_mailbox(self, sender_id: uuid.UUID) -> None:
        """Forget the sender's mailbox (its IMAP settings were removed)."""
        await self.session.exec(
            sa.delete(Mailbox).where(col(Mailbox.sender_id) == sender_id, col(Mailbox.org_id) == self.org_id)
        )

    async def resume_mailbox(self, sender_id: uuid.UUID) -> bool:
        """Make a paused mailbox active again, its cursor kept; False when the sender has no mailbox row."""
        statement = (
            sa.update(Mailbox)
            .where(col(Mailbox.sender_id) == sender_id, col(Mailbox.org_id) == self.org_id)
            .values(state=MailboxState.ACTIVE.value, paused_reason=None, paused_at=None, updated_at=utcnow())
            .returning(col(Mailbox.id))
        )
        return (await self.session.exec(statement)).first() is not None

    # provider credentials ----------------------------------------------------------------

    async def get_credential(self, credential_id: uuid.UUID) -> ProviderCredential | None:
        """Return the credential or None."""
        query = select(ProviderCredential).where(
            ProviderCredential.id == credential_id, ProviderCredential.org_id == self.org_id
        )
        return (await self.session.exec(query)).first()

    async def credential_for(self, provider: str) -> ProviderCredential | None:
        """Return the organization's credential for ``provider``, or None."""
        query = select(ProviderCredential).where(
            ProviderCredential.provider == provider, ProviderCredential.org_id == self.org_id
        )
        return (await self.session.exec(query)).first()

    async def list_credentials(self, *, cursor: str | None, limit: int) -> Sequence[ProviderCredential]:
        """Return up to ``limit + 1`` credentials after ``cursor``, newest first."""
        query = select(ProviderCredential).where(ProviderCredential.org_id == self.org_id)
        after = keyset(ProviderCredential, cursor)
        if after is not None:
            query = query.where(after)
        query = query.order_by(col(ProviderCredential.created_at).desc(), col(ProviderCredential.id).desc()).limit(
            limit + 1
        )
        return (await self.session.exec(query)).all()

    async def add_credential(self, row: ProviderCredential) -> bool:
        """Insert credentials; False when the organization already has some for that provider."""
        try:
            async with self.session.begin_nested():
                self.session.add(row)
                await self.session.flush()
        except IntegrityError:
            return False
        return True

    async def delete_credential(self, credential_id: uuid.UUID) -> None:
        """Delete the credential."""
        await self.session.exec(
            sa.delete(ProviderCredential).where(
                col(ProviderCredential.id) == credential_id, col(ProviderCredential.org_id) == self.org_id
            )
        )
