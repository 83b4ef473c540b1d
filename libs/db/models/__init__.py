"""Every table model, imported so the metadata (and Alembic) knows them all."""

from libs.db.models import analytics, auth, brand, campaign, conversations, deliverability, inbound, leads, worker
from libs.db.models.tenancy import Organization, SystemSecret

__all__ = [
    "Organization",
    "SystemSecret",
    "analytics",
    "auth",
    "brand",
    "campaign",
    "conversations",
    "deliverability",
    "inbound",
    "leads",
    "worker",
]
