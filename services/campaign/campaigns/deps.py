"""Providers the campaign controllers depend on: repository, services and the brand client."""

from __future__ import annotations

from litestar.datastructures import State
from litestar.di import NamedDependency
from sqlmodel.ext.asyncio.session import AsyncSession

from libs.security import Principal
from services.campaign.campaigns.brand_client import BrandClient
from services.campaign.campaigns.repository import Repositories
from services.campaign.campaigns.service import CampaignService
from services.campaign.campaigns.timeline import TimelineService
from services.campaign.keys import suppression_key


async def provide_repository(
    session: NamedDependency[AsyncSession], principal: NamedDependency[Principal], state: State
) -> Repositories:
    """Dependency: the campaign box's repositories for the caller's organization, on the request's transaction."""
    return Repositories.for_org(session, principal.org_id, suppression_key=await suppression_key(state))


async def provide_campaign_service(repo: NamedDependency[Repositories]) -> CampaignService:
    """Dependency: the campaign service for the caller's organization."""
    return CampaignService(repo)


async def provide_timeline_service(repo: NamedDependency[Repositories]) -> TimelineService:
    """Dependency: the lead timeline service for the caller's organization."""
    return TimelineService(repo)


async def provide_brand_client(state: State) -> BrandClient:
    """Dependency: the process's brand service client."""
    client: BrandClient = state.brand_client
    return client
