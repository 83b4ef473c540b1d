"""Every query of campaigns, steps, enrollments and the ledger's read side, one repository per concern.

Each filters by organization. :class:`Repositories` holds one of each on the request's
transaction; a service takes the ones it needs.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlmodel.ext.asyncio.session import AsyncSession

from services.campaign.campaigns.repository.base import EnrollOutcome, LeadRow, TenantRepository, suppressed_sql, touch
from services.campaign.campaigns.repository.campaigns import CampaignRepository
from services.campaign.campaigns.repository.enrollments import EnrollmentRepository
from services.campaign.campaigns.repository.leads import LeadLookup
from services.campaign.campaigns.repository.messages import MessageRepository
from services.campaign.campaigns.repository.steps import StepRepository

__all__ = [
    "CampaignRepository",
    "EnrollOutcome",
    "EnrollmentRepository",
    "LeadLookup",
    "LeadRow",
    "MessageRepository",
    "Repositories",
    "StepRepository",
    "TenantRepository",
    "suppressed_sql",
    "touch",
]


@dataclass(frozen=True, slots=True)
class Repositories:
    """One repository of each concern, all on one session and organization."""

    campaigns: CampaignRepository
    steps: StepRepository
    enrollments: EnrollmentRepository
    leads: LeadLookup
    messages: MessageRepository

    @classmethod
    def for_org(cls, session: AsyncSession, org_id: uuid.UUID, *, suppression_key: bytes) -> Repositories:
        """Every repository for ``org_id`` on ``session`` (the suppression key checks enrollments and sends)."""
        return cls(
            campaigns=CampaignRepository(session, org_id),
            steps=StepRepository(session, org_id),
            enrollments=EnrollmentRepository(session, org_id, suppression_key=suppression_key),
            leads=LeadLookup(session, org_id, suppression_key=suppression_key),
            messages=MessageRepository(session, org_id),
        )

    @property
    def session(self) -> AsyncSession:
        """The transaction every repository runs on."""
        return self.campaigns.session
