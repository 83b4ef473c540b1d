"""Providers the lead controllers depend on: the service's settings, the acting context and the services.

The same wiring as the campaigns sub-box (deps -> service -> repository): a handler names the
service it needs and gets one bound to the request's transaction and the caller's organization.
"""

from __future__ import annotations

from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from sqlmodel.ext.asyncio.session import AsyncSession

from libs.security import Principal
from services.campaign.keys import suppression_key
from services.campaign.leads.service import Context, ImportService, LeadService, SuppressionService
from services.campaign.settings import CampaignSettings


async def provide_settings(state: State) -> CampaignSettings:
    """Dependency: the settings the app was built with (validated once, at start)."""
    settings: CampaignSettings = state.settings
    return settings


async def provide_context(
    state: State, principal: NamedDependency[Principal], settings: NamedDependency[CampaignSettings]
) -> Context:
    """Dependency: the acting principal with the erasure-hash key and the default phone region."""
    return Context(
        principal=principal, hash_key=await suppression_key(state), default_region=settings.default_phone_region
    )


async def provide_lead_service(session: NamedDependency[AsyncSession], ctx: NamedDependency[Context]) -> LeadService:
    """Dependency: the lead service for the caller's organization, on the request's transaction."""
    return LeadService(session, ctx)


async def provide_import_service(
    session: NamedDependency[AsyncSession], ctx: NamedDependency[Context]
) -> ImportService:
    """Dependency: the import service for the caller's organization, on the request's transaction."""
    return ImportService(session, ctx)


async def provide_suppression_service(
    session: NamedDependency[AsyncSession], ctx: NamedDependency[Context]
) -> SuppressionService:
    """Dependency: the suppression service for the caller's organization, on the request's transaction."""
    return SuppressionService(session, ctx)


def lead_dependencies() -> dict[str, Provide]:
    """Every provider by the name handlers ask for it (fresh ``Provide`` objects for one controller)."""
    return {
        "settings": Provide(provide_settings),
        "ctx": Provide(provide_context),
        "leads": Provide(provide_lead_service),
        "imports": Provide(provide_import_service),
        "suppressions": Provide(provide_suppression_service),
    }
