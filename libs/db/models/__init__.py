"""Every table model, imported so the metadata (and Alembic) knows them all."""

from libs.db.models import auth, brand, campaign, inbound, leads, worker
from libs.db.models.tenancy import Organization, SystemSecret

__all__ = ["Organization", "SystemSecret", "auth", "brand", "campaign", "inbound", "leads", "worker"]
