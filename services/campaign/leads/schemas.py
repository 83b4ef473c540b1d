"""Request and response shapes for leads, imports and suppressions."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from libs.db.models.leads import (
    ImportStatus,
    Lead,
    LeadImport,
    LeadStatus,
    Suppression,
    SuppressionChannel,
    SuppressionKind,
    SuppressionReason,
)

Text = Annotated[str, Field(max_length=200)]
CustomValue = str | int | float | bool | None
MAX_CUSTOM_FIELDS = 100


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _check_custom(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is None:
        return None
    if len(value) > MAX_CUSTOM_FIELDS:
        raise ValueError(f"at most {MAX_CUSTOM_FIELDS} custom fields")
    for key, item in value.items():
        if not key or len(key) > 100:
            raise ValueError("custom field names are 1-100 characters")
        if isinstance(item, str) and len(item) > 2000:
            raise ValueError(f"custom field {key!r} is longer than 2000 characters")
    return value


class LeadWrite(_Strict):
    """Fields a client may set on a lead (status, ids and timestamps are the server's)."""

    email: str | None = Field(default=None, max_length=320)
    phone: str | None = Field(default=None, max_length=64)
    first_name: Text | None = None
    last_name: Text | None = None
    company: Text | None = None
    title: Text | None = None
    timezone: str | None = Field(
        default=None, max_length=64, description="IANA name; inferred from the phone if unset."
    )
    custom_fields: dict[str, CustomValue] | None = None
    consent_email: bool | None = Field(default=None, description="True records consent now; false withdraws it.")
    consent_sms: bool | None = Field(default=None, description="SMS needs recorded consent (TCPA).")
    consent_voice: bool | None = Field(default=None, description="Voicemail drops need recorded consent.")
    consent_source: Text | None = Field(default=None, description="Where consent was given (form, call, contract).")

    _custom = field_validator("custom_fields")(_check_custom)


class LeadCreate(LeadWrite):
    """A new lead: an email or a phone (or both)."""


class LeadUpdate(LeadWrite):
    """A partial update: only the fields sent change; ``null`` clears a field."""


class LeadRead(BaseModel):
    """A lead as the API shows it."""

    id: uuid.UUID
    email: str | None
    phone: str | None
    first_name: str | None
    last_name: str | None
    company: str | None
    title: str | None
    timezone: str | None
    custom_fields: dict[str, Any]
    consent_email_at: datetime | None
    consent_sms_at: datetime | None
    consent_voice_at: datetime | None
    consent_source: str | None
    consent_sms_source: str | None
    consent_voice_source: str | None
    status: LeadStatus
    import_id: uuid.UUID | None
    created_at: datetime
    updated_at: datetime
    erased_at: datetime | None

    @classmethod
    def of(cls, lead: Lead) -> LeadRead:
        """Build from the table row."""
        return cls.model_validate(lead, from_attributes=True)


class ImportRead(BaseModel):
    """An import and its progress; the counters move while it runs."""

    id: uuid.UUID
    status: ImportStatus
    filename: str | None
    size_bytes: int
    encoding: str | None
    delimiter: str | None
    default_region: str
    mapping: dict[str, Any]
    rows_read: int
    rows_imported: int
    rows_updated: int
    rows_rejected: int
    rows_duplicate: int
    rows_suppressed: int
    error: str | None
    report_url: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, item: LeadImport) -> ImportRead:
        """Build from the table row."""
        data = {k: getattr(item, k) for k in cls.model_fields if k != "report_url"}
        return cls(**data, report_url=f"/api/leads/imports/{item.id}/report")


class SuppressionCreate(_Strict):
    """A contact to suppress; ``kind`` is guessed from ``value`` when omitted."""

    value: str = Field(min_length=1, max_length=320)
    channel: SuppressionChannel = SuppressionChannel.ALL
    kind: SuppressionKind | None = None
    reason: SuppressionReason = SuppressionReason.MANUAL
    source: Text | None = None


class SuppressionRead(BaseModel):
    """A suppression list entry."""

    id: uuid.UUID
    channel: SuppressionChannel
    kind: SuppressionKind
    value: str
    reason: SuppressionReason
    source: str | None
    created_at: datetime

    @classmethod
    def of(cls, item: Suppression) -> SuppressionRead:
        """Build from the table row."""
        return cls.model_validate(item, from_attributes=True)


class RowProblem(BaseModel):
    """A CSV row that was not taken, and why."""

    row: int
    reason: str


class SuppressionImportResult(BaseModel):
    """What a suppression CSV upload did."""

    added: int
    existing: int
    rejected: int
    problems: list[RowProblem] = Field(description="The first 100 rejected rows.")
