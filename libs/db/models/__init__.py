"""Every table model, imported so the metadata (and Alembic) knows them all."""

from libs.db.models import auth, brand, campaign, inbound, leads, worker
from libs.db.models.tenancy import Organization

__all__ = ["Organization", "auth", "brand", "campaign", "inbound", "leads", "worker"]
