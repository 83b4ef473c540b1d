"""A campaign's steps and their order."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from sqlmodel import col, select

from libs.db.models.campaign import (
    CampaignStep,
    Message,
)
from services.campaign.campaigns.repository.base import (
    TenantRepository,
)


class StepRepository(TenantRepository):
    """A campaign's steps and their order."""

    async def of_campaign(self, campaign_id: uuid.UUID) -> Sequence[CampaignStep]:
        """Return the campaign's steps in order."""
        query = (
            select(CampaignStep)
            .where(CampaignStep.org_id == self.org_id, CampaignStep.campaign_id == campaign_id)
            .order_by(col(CampaignStep.position))
            .execution_options(populate_existing=True)
        )
        return (await self.session.exec(query)).all()

    async def get(self, campaign_id: uuid.UUID, step_id: uuid.UUID) -> CampaignStep | None:
        """Return one step of the campaign."""
        query = (
            select(CampaignStep)
            .where(
                CampaignStep.org_id == self.org_id,
                CampaignStep.campaign_id == campaign_id,
                CampaignStep.id == step_id,
            )
            .execution_options(populate_existing=True)
        )
        return (await self.session.exec(query)).first()

    async def has_messages(self, step_id: uuid.UUID) -> bool:
        """Whether any message was written for the step."""
        query = select(Message.id).where(Message.org_id == self.org_id, Message.step_id == step_id).limit(1)
        return (await self.session.exec(query)).first() is not None

    async def set_positions(self, campaign_id: uuid.UUID, order: Sequence[uuid.UUID]) -> None:
        """Renumber the campaign's steps 1..n in ``order`` (two passes keep the unique key happy)."""
        params = {"org": self.org_id, "campaign": campaign_id}
        await self._sql(
            sa.text(
                "UPDATE campaign_steps SET position = position + 1000000 "
                "WHERE org_id = :org AND campaign_id = :campaign"
            ),
            params,
        )
        await self._sql(
            sa.text(
                "UPDATE campaign_steps s SET position = o.ordinality, updated_at = now() "
                "FROM unnest(CAST(:ids AS uuid[])) WITH ORDINALITY AS o(id, ordinality) "
                "WHERE s.id = o.id AND s.org_id = :org AND s.campaign_id = :campaign"
            ),
            {**params, "ids": [str(i) for i in order]},
        )
        await self.session.flush()
