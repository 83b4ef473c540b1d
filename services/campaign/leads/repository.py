"""Every query of the leads part; each one filters by organization (RLS is the second lock)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from libs.db.models.leads import Lead, LeadImport, LeadImportRejection, Suppression
from libs.pagination import keyset
from libs.suppression import LEADS, SUPPRESSIONS, refresh_lead_status_statement, suppress_statement


async def execute(session: AsyncSession, statement: Any) -> Any:
    """Run a Core statement on the session's connection (same transaction, no ORM result wrapping)."""
    return await (await session.connection()).execute(statement)


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


@dataclass(frozen=True, slots=True)
class LeadFilters:
    """What a lead list may be narrowed by."""

    status: str | None = None
    q: str | None = None
    email: str | None = None
    phone: str | None = None
    company: str | None = None
    import_id: uuid.UUID | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


class LeadRepository:
    """Leads of one organization."""

    def __init__(self, session: AsyncSession, org_id: uuid.UUID) -> None:
        self.session = session
        self.org_id = org_id

    async def get(self, lead_id: uuid.UUID, *, for_update: bool = False) -> Lead | None:
        """Return the lead, or None when it is not this organization's."""
        stmt = select(Lead).where(Lead.id == lead_id, Lead.org_id == self.org_id)
        if for_update:
            stmt = stmt.with_for_update()
        return (await self.session.exec(stmt)).first()

    async def find_by_contact(
        self, *, email_normalized: str | None, phone: str | None, exclude: uuid.UUID | None = None
    ) -> Lead | None:
        """Return the lead with this email (or, without email, this phone among email-less leads)."""
        stmt = select(Lead).where(Lead.org_id == self.org_id)
        if email_normalized:
            stmt = stmt.where(Lead.email_normalized == email_normalized)
        elif phone:
            stmt = stmt.where(Lead.phone == phone, col(Lead.email_normalized).is_(None))
        else:
            return None
        if exclude is not None:
            stmt = stmt.where(Lead.id != exclude)
        return (await self.session.exec(stmt)).first()

    async def page(self, filters: LeadFilters, *, limit: int, cursor: str | None) -> Sequence[Lead]:
        """Return up to ``limit + 1`` leads, newest first, after ``cursor``."""
        stmt = select(Lead).where(Lead.org_id == self.org_id)
        if filters.status:
            stmt = stmt.where(Lead.status == filters.status)
        if filters.email:
            stmt = stmt.where(Lead.email_normalized == filters.email)
        if filters.phone:
            stmt = stmt.where(Lead.phone == filters.phone)
        if filters.company:
            stmt = stmt.where(col(Lead.company).ilike(_like(filters.company), escape="\\"))
        if filters.import_id:
            stmt = stmt.where(Lead.import_id == filters.import_id)
        if filters.created_after:
            stmt = stmt.where(Lead.created_at >= filters.created_after)
        if filters.created_before:
            stmt = stmt.where(Lead.created_at < filters.created_before)
        if filters.q:
            pattern = _like(filters.q)
            stmt = stmt.where(
                sa.or_(
                    *(
                        column.ilike(pattern, escape="\\")
                        for column in (
                            col(Lead.email_normalized),
                            col(Lead.phone),
                            col(Lead.company),
                            col(Lead.first_name),
                            col(Lead.last_name),
                        )
                    )
                )
            )
        if (after := keyset(Lead, cursor)) is not None:
            stmt = stmt.where(after)
        stmt = stmt.order_by(col(Lead.created_at).desc(), col(Lead.id).desc()).limit(limit + 1)
        return (await self.session.exec(stmt)).all()

    async def add(self, lead: Lead) -> Lead:
        """Insert ``lead`` (flushes, so unique violations surface here)."""
        self.session.add(lead)
        await self.session.flush()
        return lead

    async def refresh_status(self, key: bytes, lead_ids: Sequence[uuid.UUID] | None) -> None:
        """Recompute ``status`` (active or suppressed) of the given leads from the suppression list."""
        await execute(self.session, refresh_lead_status_statement(org_id=self.org_id, key=key, lead_ids=lead_ids))


class ImportRepository:
    """Lead imports of one organization."""

    def __init__(self, session: AsyncSession, org_id: uuid.UUID) -> None:
        self.session = session
        self.org_id = org_id

    async def get(self, import_id: uuid.UUID) -> LeadImport | None:
        """Return the import, or None when it is not this organization's."""
        stmt = select(LeadImport).where(LeadImport.id == import_id, LeadImport.org_id == self.org_id)
        return (await self.session.exec(stmt)).first()

    async def by_idempotency_key(self, key: str) -> LeadImport | None:
        """Return the import created with this ``Idempotency-Key``, if any."""
        stmt = select(LeadImport).where(LeadImport.org_id == self.org_id, LeadImport.idempotency_key == key)
        return (await self.session.exec(stmt)).first()

    async def page(self, *, limit: int, cursor: str | None) -> Sequence[LeadImport]:
        """Return up to ``limit + 1`` imports, newest first."""
        stmt = select(LeadImport).where(LeadImport.org_id == self.org_id)
        if (after := keyset(LeadImport, cursor)) is not None:
            stmt = stmt.where(after)
        stmt = stmt.order_by(col(LeadImport.created_at).desc(), col(LeadImport.id).desc()).limit(limit + 1)
        return (await self.session.exec(stmt)).all()

    async def add(self, item: LeadImport) -> None:
        """Insert the import inside a savepoint; raise IntegrityError on a duplicate key."""
        async with self.session.begin_nested():
            self.session.add(item)
            await self.session.flush()

    async def rejections(
        self, import_id: uuid.UUID, *, batch: int = 5000
    ) -> AsyncIterator[Sequence[LeadImportRejection]]:
        """Yield the rejected rows of an import in row order, ``batch`` at a time."""
        after = 0
        while True:
            stmt = (
                select(LeadImportRejection)
                .where(
                    LeadImportRejection.org_id == self.org_id,
                    LeadImportRejection.import_id == import_id,
                    LeadImportRejection.row_number > after,
                )
                .order_by(col(LeadImportRejection.row_number))
                .limit(batch)
            )
            rows = (await self.session.exec(stmt)).all()
            if not rows:
                return
            yield rows
            after = rows[-1].row_number


class SuppressionRepository:
    """The suppression list of one organization."""

    def __init__(self, session: AsyncSession, org_id: uuid.UUID) -> None:
        self.session = session
        self.org_id = org_id

    async def get(self, suppression_id: uuid.UUID) -> Suppression | None:
        """Return the entry, or None when it is not this organization's."""
        stmt = select(Suppression).where(Suppression.id == suppression_id, Suppression.org_id == self.org_id)
        return (await self.session.exec(stmt)).first()

    async def find(self, *, channel: str, kind: str, value: str) -> Suppression | None:
        """Return the entry with exactly this channel, kind and value."""
        stmt = select(Suppression).where(
            Suppression.org_id == self.org_id,
            Suppression.channel == channel,
            Suppression.kind == kind,
            Suppression.value == value,
        )
        return (await self.session.exec(stmt)).first()

    async def add(self, **values: Any) -> uuid.UUID | None:
        """Insert an entry (idempotent); return its id when it is new."""
        result = await execute(self.session, suppress_statement(org_id=self.org_id, **values))
        return result.scalar_one_or_none()

    async def delete(self, item: Suppression) -> None:
        """Remove an entry."""
        await self.session.delete(item)
        await self.session.flush()

    async def page(
        self,
        *,
        channel: str | None,
        kind: str | None,
        reason: str | None,
        q: str | None,
        limit: int,
        cursor: str | None,
    ) -> Sequence[Suppression]:
        """Return up to ``limit + 1`` entries, newest first."""
        stmt = select(Suppression).where(Suppression.org_id == self.org_id)
        if channel:
            stmt = stmt.where(Suppression.channel == channel)
        if kind:
            stmt = stmt.where(Suppression.kind == kind)
        if reason:
            stmt = stmt.where(Suppression.reason == reason)
        if q:
            stmt = stmt.where(col(Suppression.value).ilike(_like(q.lower()), escape="\\"))
        if (after := keyset(Suppression, cursor)) is not None:
            stmt = stmt.where(after)
        stmt = stmt.order_by(col(Suppression.created_at).desc(), col(Suppression.id).desc()).limit(limit + 1)
        return (await self.session.exec(stmt)).all()

    async def matching_leads(self, kind: str, value: str) -> list[uuid.UUID]:
        """Ids of this organization's leads an entry of ``kind``/``value`` would cover."""
        conditions = {
            "email": LEADS.c.email_normalized == value,
            "phone": LEADS.c.phone == value,
            "domain": sa.func.split_part(LEADS.c.email_normalized, "@", 2) == value,
        }
        if kind not in conditions:
            return []
        stmt = sa.select(LEADS.c.id).where(LEADS.c.org_id == self.org_id, conditions[kind])
        return list((await execute(self.session, stmt)).scalars())

    async def all_rows(self, *, batch: int = 5000) -> AsyncIterator[Sequence[Any]]:
        """Yield every entry (oldest first), ``batch`` at a time."""
        after: tuple[datetime, uuid.UUID] | None = None
        s = SUPPRESSIONS
        while True:
            stmt = sa.select(s).where(s.c.org_id == self.org_id)
            if after is not None:
                stmt = stmt.where(sa.tuple_(s.c.created_at, s.c.id) > sa.tuple_(*after))
            rows = (await execute(self.session, stmt.order_by(s.c.created_at, s.c.id).limit(batch))).all()
            if not rows:
                return
            yield rows
            after = (rows[-1].created_at, rows[-1].id)
