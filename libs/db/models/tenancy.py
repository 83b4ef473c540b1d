"""The tenant: an organization owns every tenant row."""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from libs.db.base import created_at_field, id_field, now_field


class Organization(SQLModel, table=True):
    """A customer account; every tenant-owned row points here by ``org_id``."""

    __tablename__ = "organizations"

    id: uuid.UUID = id_field()
    name: str = Field(max_length=200)
    created_at: datetime = created_at_field()


class SystemSecret(SQLModel, table=True):
    """A deployment-wide key the database must outlive rotations with, sealed by ``libs.crypto.SecretBox``.

    ``value`` is a SecretBox token: rotating ``SDR_SECRET_KEY`` re-seals it (the old key in
    ``SDR_ENCRYPTION_KEYS`` still opens it) without changing the key inside. Not tenant data:
    no ``org_id``, read and written only by system code.
    """

    __tablename__ = "system_secrets"

    name: str = Field(primary_key=True, max_length=64)
    value: str = Field(sa_type=sa.Text, nullable=False)
    created_at: datetime = created_at_field()
    updated_at: datetime = now_field()
