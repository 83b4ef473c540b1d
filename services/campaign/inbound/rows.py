"""The rows the inbound rules read, as the repository returns them (SQLAlchemy ``Row``s, typed by what they carry)."""

from __future__ import annotations

import uuid
from typing import Any, Protocol


class MessageRow(Protocol):
    """A ``messages`` row as the repository returns it."""

    @property
    def id(self) -> uuid.UUID: ...
    @property
    def org_id(self) -> uuid.UUID: ...
    @property
    def lead_id(self) -> uuid.UUID: ...
    @property
    def campaign_id(self) -> uuid.UUID | None: ...
    @property
    def channel(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def provider_message_id(self) -> str | None: ...


class LeadRow(Protocol):
    """A ``leads`` row as the repository returns it."""

    @property
    def id(self) -> uuid.UUID: ...
    @property
    def phone(self) -> str | None: ...
    @property
    def email_normalized(self) -> str | None: ...


class EventRow(Protocol):
    """An ``inbound_events`` row as the repository returns it."""

    @property
    def id(self) -> uuid.UUID: ...
    @property
    def org_id(self) -> uuid.UUID: ...
    @property
    def source(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def payload(self) -> dict[str, Any]: ...
    @property
    def raw(self) -> bytes | None: ...
    @property
    def message_id(self) -> uuid.UUID | None: ...


class BrandRow(Protocol):
    """A ``brands`` row as the repository returns it."""

    @property
    def name(self) -> str: ...
    @property
    def opt_out_sms(self) -> str | None: ...
    @property
    def website(self) -> str | None: ...


class CredentialRow(Protocol):
    """A Twilio credential: the organization it belongs to and its sealed Auth Token."""

    @property
    def org_id(self) -> uuid.UUID: ...
    @property
    def secret_encrypted(self) -> str: ...
