"""The lead columns campaigns read (the leads box owns the table)."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa

from services.campaign.campaigns.repository.base import (
    LeadRow,
    TenantRepository,
    suppressed_sql,
)


class LeadLookup(TenantRepository):
    """The lead columns campaigns read (the leads box owns the table)."""

    async def get(self, lead_id: uuid.UUID) -> LeadRow | None:
        """Return the lead columns campaigns need."""
        row = (
            await self._sql(
                sa.text(
                    "SELECT id, email_normalized, phone, timezone, status, consent_sms_at, consent_voice_at "
                    "FROM leads WHERE org_id = :org AND id = :id"
                ),
                {"org": self.org_id, "id": lead_id},
            )
        ).first()
        return LeadRow(**row._mapping) if row else None

    async def suppressed_on(self, lead_id: uuid.UUID, channel: str) -> bool:
        """Whether the lead is on the suppression list for ``channel``."""
        suppressed, params = suppressed_sql(self.org_id, [channel], self.suppression_key, "sup_")
        row = await self._sql(
            sa.text(f"SELECT {suppressed} FROM leads l WHERE l.org_id = :org AND l.id = :id"),  # noqa: S608
            {**params, "org": self.org_id, "id": lead_id},
        )
        return bool(row.scalar())

    async def preview(self, lead_id: uuid.UUID) -> dict[str, Any] | None:
        """Return the lead columns a message is written from (the ones the worker reads), if this org's."""
        row = (
            await self._sql(
                sa.text(
                    "SELECT id, first_name, last_name, company, title, timezone, email, phone, custom_fields "
                    "FROM leads WHERE org_id = :org AND id = :id"
                ),
                {"org": self.org_id, "id": lead_id},
            )
        ).first()
        return dict(row._mapping) if row else None
