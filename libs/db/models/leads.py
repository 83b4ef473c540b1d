"""Tables the leads part of the system owns: leads, lead imports and their rejections, suppressions.

Identity of a lead inside an organization: its normalised email when it has one, else its
E.164 phone. ``email_normalized`` is unique per organization; ``phone`` is unique per
organization among leads without an email (a switchboard number may be shared by people
with different addresses). Erasure nulls every personal column and keeps the row (and its
id) so messages and enrollments keep their references; only an HMAC of the contact stays,
in ``suppressions`` (kind ``hash``, reason ``erasure``).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from libs.db.base import created_at_field, id_field, now_field, org_id_field, timestamp_field


class LeadStatus(StrEnum):
    """Lifecycle of a lead: ``suppressed`` marks a contact on the suppression list at write time."""

    ACTIVE = "active"
    SUPPRESSED = "suppressed"
    ERASED = "erased"


class ImportStatus(StrEnum):
    """Where a CSV import is: queued, running (progress counters move), then done."""

    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


class SuppressionChannel(StrEnum):
    """What a suppression covers: one channel, or ``all`` of them (see ``libs.suppression``)."""

    EMAIL = "email"
    SMS = "sms"
    VOICEMAIL = "voicemail"
    ALL = "all"


class SuppressionKind(StrEnum):
    """What ``value`` holds: an address, an E.164 number, a domain, or an erasure HMAC."""

    EMAIL = "email"
    PHONE = "phone"
    DOMAIN = "domain"
    HASH = "hash"


class SuppressionReason(StrEnum):
    """Why the contact may not be reached."""

    UNSUBSCRIBE = "unsubscribe"
    STOP = "stop"
    BOUNCE = "bounce"
    COMPLAINT = "complaint"
    MANUAL = "manual"
    ERASURE = "erasure"


def _counter() -> int:
    return Field(default=0, nullable=False, sa_column_kwargs={"server_default": sa.text("0")})


class Lead(SQLModel, table=True):
    """A person a campaign may reach; personal columns are NULL once erased.

    Imports write a million rows at a time, so every index and per-row check here is paid
    for: ``org_id`` has no index of its own (every composite index starts with it), and
    neither ``org_id`` nor ``import_id`` is a foreign key (a foreign key is one trigger call
    per inserted row; see migration 0008). Ids of imported leads are time-ordered (UUIDv7
    layout), so the primary key grows at its right edge instead of at random pages.
    """

    __tablename__ = "leads"
    __table_args__ = (
        sa.UniqueConstraint("org_id", "email_normalized"),
        sa.Index(
            "ix_leads_org_id_phone_no_email",
            "org_id",
            "phone",
            unique=True,
            postgresql_where=sa.text("email_normalized IS NULL AND phone IS NOT NULL"),
        ),
        sa.Index("ix_leads_org_id_created_at_id", "org_id", "created_at", "id"),
        sa.Index("ix_leads_org_id_phone", "org_id", "phone"),
        sa.Index("ix_leads_import_id", "import_id"),
        sa.CheckConstraint("status IN ('active', 'suppressed', 'erased')", name="status"),
    )

    id: uuid.UUID = id_field()
    org_id: uuid.UUID = Field(nullable=False, description="The organization; not a foreign key (see above).")
    email: str | None = Field(default=None, max_length=320)
    email_normalized: str | None = Field(default=None, max_length=320)
    phone: str | None = Field(default=None, max_length=16)
    first_name: str | None = Field(default=None, max_length=200)
    last_name: str | None = Field(default=None, max_length=200)
    company: str | None = Field(default=None, max_length=200)
    title: str | None = Field(default=None, max_length=200)
    timezone: str | None = Field(default=None, max_length=64)
    custom_fields: dict[str, Any] = Field(
        default_factory=dict, sa_type=JSONB, nullable=False, sa_column_kwargs={"server_default": sa.text("'{}'")}
    )
    consent_email_at: datetime | None = timestamp_field()
    consent_sms_at: datetime | None = timestamp_field()
    consent_voice_at: datetime | None = timestamp_field()
    consent_source: str | None = Field(default=None, max_length=200)
    consent_sms_source: str | None = Field(default=None, max_length=200)
    consent_voice_source: str | None = Field(default=None, max_length=200)
    status: str = Field(default=LeadStatus.ACTIVE.value, max_length=16)
    import_id: uuid.UUID | None = Field(default=None, description="The import that last wrote this lead.")
    created_at: datetime = created_at_field()
    updated_at: datetime = now_field()
    erased_at: datetime | None = timestamp_field()


class LeadImport(SQLModel, table=True):
    """One uploaded CSV file and the progress of the job importing it."""

    __tablename__ = "lead_imports"
    __table_args__ = (
        sa.UniqueConstraint("org_id", "idempotency_key"),
        sa.Index("ix_lead_imports_org_id_created_at_id", "org_id", "created_at", "id"),
        sa.CheckConstraint("status IN ('queued', 'running', 'completed', 'failed')", name="status"),
    )

    id: uuid.UUID = id_field()
    org_id: uuid.UUID = org_id_field()
    created_by: uuid.UUID | None = Field(default=None)
    idempotency_key: str | None = Field(default=None, max_length=200)
    status: str = Field(default=ImportStatus.QUEUED.value, max_length=16)
    filename: str | None = Field(default=None, max_length=255)
    file_path: str | None = Field(default=None, max_length=1024)
    size_bytes: int = Field(default=0, sa_type=sa.BigInteger, nullable=False)
    sha256: str | None = Field(default=None, max_length=64)
    encoding: str | None = Field(default=None, max_length=32)
    delimiter: str | None = Field(default=None, max_length=1)
    default_region: str = Field(default="US", max_length=2)
    mapping: dict[str, Any] = Field(
        default_factory=dict, sa_type=JSONB, nullable=False, sa_column_kwargs={"server_default": sa.text("'{}'")}
    )
    options: dict[str, Any] = Field(
        default_factory=dict, sa_type=JSONB, nullable=False, sa_column_kwargs={"server_default": sa.text("'{}'")}
    )
    rows_read: int = _counter()
    rows_imported: int = _counter()
    rows_updated: int = _counter()
    rows_rejected: int = _counter()
    rows_duplicate: int = _counter()
    rows_suppressed: int = _counter()
    checkpoint_row: int = _counter()
    error: str | None = Field(default=None, max_length=2000)
    created_at: datetime = created_at_field()
    updated_at: datetime = now_field()
    started_at: datetime | None = timestamp_field()
    finished_at: datetime | None = timestamp_field()


class LeadImportFile(SQLModel, table=True):
    """One chunk of an uploaded import file: the bytes live in PostgreSQL, reachable from every host."""

    __tablename__ = "lead_import_files"

    import_id: uuid.UUID = Field(foreign_key="lead_imports.id", primary_key=True, ondelete="CASCADE")
    seq: int = Field(primary_key=True)
    org_id: uuid.UUID = org_id_field()
    data: bytes = Field(sa_type=sa.LargeBinary, nullable=False)


class LeadImportRejection(SQLModel, table=True):
    """A row of an import that was not imported, with the reason and its original cells."""

    __tablename__ = "lead_import_rejections"

    import_id: uuid.UUID = Field(foreign_key="lead_imports.id", primary_key=True, ondelete="CASCADE")
    row_number: int = Field(primary_key=True)
    org_id: uuid.UUID = org_id_field()
    reason: str = Field(max_length=500)
    cells: list[str] = Field(
        default_factory=list, sa_type=JSONB, nullable=False, sa_column_kwargs={"server_default": sa.text("'[]'")}
    )


class Suppression(SQLModel, table=True):
    """A contact (address, number, domain or erasure hash) an organization may not reach."""

    __tablename__ = "suppressions"
    __table_args__ = (
        sa.UniqueConstraint("org_id", "kind", "value", "channel"),
        sa.Index("ix_suppressions_org_id_created_at_id", "org_id", "created_at", "id"),
        sa.CheckConstraint("channel IN ('email', 'sms', 'voicemail', 'all')", name="channel"),
        sa.CheckConstraint("kind IN ('email', 'phone', 'domain', 'hash')", name="kind"),
        sa.CheckConstraint(
            "reason IN ('unsubscribe', 'stop', 'bounce', 'complaint', 'manual', 'erasure')", name="reason"
        ),
    )

    id: uuid.UUID = id_field()
    org_id: uuid.UUID = org_id_field()
    channel: str = Field(max_length=16)
    kind: str = Field(max_length=16)
    value: str = Field(max_length=320)
    reason: str = Field(max_length=16)
    source: str | None = Field(default=None, max_length=200)
    created_by: uuid.UUID | None = Field(default=None)
    created_at: datetime = created_at_field()
