"""Providers the brand controllers depend on: the secret box, SMTP check settings, the service."""

from __future__ import annotations

import ssl

from litestar.datastructures import State
from litestar.di import NamedDependency
from sqlmodel.ext.asyncio.session import AsyncSession

from libs.crypto import SecretBox
from libs.security import Principal
from services.brand.service import BrandService, SmtpCheckSettings
from services.brand.settings import BrandSettings


def smtp_check_settings(settings: BrandSettings) -> SmtpCheckSettings:
    """Build how SMTP checks run from settings: system trust store plus ``smtp_ca_file``."""
    context = ssl.create_default_context()
    if settings.smtp_ca_file is not None:
        context.load_verify_locations(cafile=str(settings.smtp_ca_file))
    return SmtpCheckSettings(
        timeout=settings.smtp_verify_timeout,
        ssl_context=context,
        allow_private=settings.smtp_private_hosts_allowed,
    )


async def provide_box(state: State) -> SecretBox:
    """Dependency: the process's secret box."""
    box: SecretBox = state.box
    return box


async def provide_brand_service(
    session: NamedDependency[AsyncSession], principal: NamedDependency[Principal], box: NamedDependency[SecretBox]
) -> BrandService:
    """Dependency: the brand service for the caller's organization, on the request's transaction."""
    return BrandService(session, principal.org_id, box)
