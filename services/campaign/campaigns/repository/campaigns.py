"""Campaigns themselves, and the brand they speak for."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, select

from libs.db.models.campaign import (
    Campaign,
    Enrollment,
    Message,
)
from libs.pagination import keyset
from services.campaign.campaigns.repository.base import (
    TenantRepository,
)


class CampaignRepository(TenantRepository):
    """Campaigns themselves, and the brand they speak for."""

    async def get(self, campaign_id: uuid.UUID, *, for_update: bool = False) -> Campaign | None:
        """Return the campaign, optionally locked for the rest of the transaction."""
        query = select(Campaign).where(Campaign.id == campaign_id, Campaign.org_id == self.org_id)
        if for_update:
            query = query.with_for_update()
        return (await self.session.exec(query)).first()

    async def list(
        self,
        *,
        limit: int,
        cursor: str | None,
        status: str | None = None,
        brand_id: uuid.UUID | None = None,
        name: str | None = None,
    ) -> Sequence[Campaign]:
        """Return ``limit + 1`` campaigns, newest first, after ``cursor``."""
        query = select(Campaign).where(Campaign.org_id == self.org_id)
        if status:
            query = query.where(Campaign.status == status)
        if brand_id:
            query = query.where(Campaign.brand_id == brand_id)
        if name:
            escaped = name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            query = query.where(col(Campaign.name).ilike(f"%{escaped}%", escape="\\"))
        after = keyset(Campaign, cursor)
        if after is not None:
            query = query.where(after)
        query = query.order_by(col(Campaign.created_at).desc(), col(Campaign.id).desc()).limit(limit + 1)
        return (await self.session.exec(query)).all()

    async def brand(self, brand_id: uuid.UUID) -> dict[str, Any] | None:
        """Return the brand's id, time zone and archive time, if it is this organization's."""
        row = (
            await self._sql(
                sa.text("SELECT id, timezone, archived_at FROM brands WHERE id = :id AND org_id = :org"),
                {"id": brand_id, "org": self.org_id},
            )
        ).first()
        return dict(row._mapping) if row else None

    async def preview_brand(self, brand_id: uuid.UUID, channel: str) -> dict[str, Any] | None:
        """Return the brand columns a message is written from, the channel's sender name and whether OpenAI is set.

        The sender is the one the worker picks for the channel (verified first, then the oldest).
        """
        row = (
            await self._sql(
                sa.text(
                    "SELECT b.name, b.website, b.description, b.value_proposition, b.target_audience, "
                    "b.tone_of_voice, b.proof_points, b.forbidden_claims, b.email_signature, b.sms_signoff, "
                    "b.postal_address, b.opt_out_email, b.opt_out_sms, b.opt_out_voicemail, "
                    "(SELECT x.from_name FROM senders x WHERE x.org_id = b.org_id AND x.brand_id = b.id "
                    "AND x.kind = :kind ORDER BY x.verified_at IS NULL, x.created_at, x.id LIMIT 1) AS from_name, "
                    "EXISTS (SELECT 1 FROM provider_credentials oa WHERE oa.org_id = b.org_id "
                    "AND oa.provider = 'openai') AS has_openai "
                    "FROM brands b WHERE b.id = :id AND b.org_id = :org"
                ),
                {"id": brand_id, "org": self.org_id, "kind": "voice" if channel == "voicemail" else channel},
            )
        ).first()
        return dict(row._mapping) if row else None

    async def has_messages(self, campaign_id: uuid.UUID) -> bool:
        """Whether any message of the campaign exists."""
        query = select(Message.id).where(Message.org_id == self.org_id, Message.campaign_id == campaign_id).limit(1)
        return (await self.session.exec(query)).first() is not None

    async def has_enrollments(self, campaign_id: uuid.UUID) -> bool:
        """Whether any lead is enrolled in the campaign."""
        query = (
            select(Enrollment.id)
            .where(Enrollment.org_id == self.org_id, Enrollment.campaign_id == campaign_id)
            .limit(1)
        )
        return (await self.session.exec(query)).first() is not None
