"""The tenant: an organization owns every tenant row."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlmodel import Field, SQLModel

from libs.db.base import created_at_field, id_field


class Organization(SQLModel, table=True):
    """A customer account; every tenant-owned row points here by ``org_id``."""

    __tablename__ = "organizations"

    id: uuid.UUID = id_field()
    name: str = Field(max_length=200)
    created_at: datetime = created_at_field()
