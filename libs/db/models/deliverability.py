"""Deliverability tables: DKIM keys per sending domain, and who signs each sender's mail.

The private key never sits here in clear: ``private_key_encrypted`` holds ``libs.crypto.SecretBox``
ciphertext (sealed with the key's organization and domain as associated data); ``public_key`` is
the base64 DER that goes into the ``p=`` tag of the DNS record.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from libs.db.base import created_at_field, id_field, in_enum, now_field, org_id_field

ROTATION_OVERLAP = timedelta(days=7)
"""How long after a rotation the replaced key still signs (next to the new one)."""


class DkimSigner(StrEnum):
    """Who puts the DKIM signature on a sender's mail."""

    TIDEWATER = "tidewater"
    """The worker signs with the organization's key for the From domain."""
    OWN_SERVER = "own_server"
    """The sender's SMTP server signs; the worker sends the message as it is."""


class DkimKey(SQLModel, table=True):
    """The organization's DKIM key pair for one sending domain.

    A rotation keeps the key it replaces as ``previous_*``: for :data:`ROTATION_OVERLAP` after it
    the worker signs with both, so mail verifies whichever record DNS publishes meanwhile.
    """

    __tablename__ = "dkim_keys"
    __table_args__ = (sa.UniqueConstraint("org_id", "domain"),)

    id: uuid.UUID = id_field()
    org_id: uuid.UUID = org_id_field()
    domain: str = Field(max_length=253)
    selector: str = Field(max_length=63)
    private_key_encrypted: str = Field(sa_type=sa.Text, nullable=False)
    public_key: str = Field(sa_type=sa.Text, nullable=False)
    created_at: datetime = created_at_field()
    previous_selector: str | None = Field(default=None, max_length=63)
    previous_private_key_encrypted: str | None = Field(default=None, sa_type=sa.Text)


class SenderSigning(SQLModel, table=True):
    """Who signs one email sender's mail; a sender without a row is signed by Tidewater when a key exists."""

    __tablename__ = "sender_signing"
    __table_args__ = (sa.CheckConstraint(in_enum("dkim", DkimSigner), name="dkim"),)

    sender_id: uuid.UUID = Field(foreign_key="senders.id", primary_key=True, ondelete="CASCADE")
    org_id: uuid.UUID = org_id_field()
    dkim: str = Field(default=DkimSigner.TIDEWATER.value, max_length=16)
    updated_at: datetime = now_field()
