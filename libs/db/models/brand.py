"""Tables the brand box owns: brands, senders, the cursors of their mailboxes and provider credentials.

Secrets never sit here in clear: ``*_encrypted`` columns hold ``libs.crypto.SecretBox``
ciphertext and ``*_last4`` the last four characters shown back to the user.
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


class SenderKind(StrEnum):
    """The channel a sender speaks on."""

    EMAIL = "email"
    SMS = "sms"
    VOICE = "voice"


class SmtpSecurity(StrEnum):
    """How an SMTP connection is protected."""

    STARTTLS = "starttls"
    TLS = "tls"
    NONE = "none"


class ImapTls(StrEnum):
    """How an IMAP connection is protected."""

    TLS = "tls"
    STARTTLS = "starttls"
    NONE = "none"


class MailboxState(StrEnum):
    """Whether a mailbox is read: ``paused`` after a refused login, until a member resumes it."""

    ACTIVE = "active"
    PAUSED = "paused"


class AuthMode(StrEnum):
    """How an email sender logs in to its SMTP and IMAP servers."""

    PASSWORD = "password"  # noqa: S105 (a mode's name)
    OAUTH2 = "oauth2"


class OAuthProvider(StrEnum):
    """Whose OAuth 2.0 server issues a sender's tokens (``generic``: URLs given by the organization)."""

    GOOGLE = "google"
    MICROSOFT = "microsoft"
    GENERIC = "generic"


class OAuthStatus(StrEnum):
    """Whether a sender's OAuth tokens work: ``reconnect`` once the provider refused the refresh token."""

    CONNECTED = "connected"
    RECONNECT = "reconnect"


class Provider(StrEnum):
    """A third party whose credentials an organization stores."""

    TWILIO = "twilio"
    OPENAI = "openai"


def _version_field() -> int:
    return Field(default=1, nullable=False, sa_column_kwargs={"server_default": sa.text("1")})


def _string_list() -> list[str]:
    return Field(
        default_factory=list, sa_type=JSONB, nullable=False, sa_column_kwargs={"server_default": sa.text("'[]'")}
    )


class Brand(SQLModel, table=True):
    """Everything the worker needs to speak for a company; ``version`` guards concurrent edits."""

    __tablename__ = "brands"
    __table_args__ = (sa.Index("ix_brands_org_id_created_at_id", "org_id", "created_at", "id"),)

    id: uuid.UUID = id_field()
    org_id: uuid.UUID = org_id_field()
    name: str = Field(max_length=200)
    website: str | None = Field(default=None, max_length=2048)
    description: str | None = Field(default=None, max_length=2000)
    value_proposition: str | None = Field(default=None, max_length=2000)
    target_audience: str | None = Field(default=None, max_length=2000)
    tone_of_voice: str | None = Field(default=None, max_length=500)
    proof_points: list[str] = _string_list()
    forbidden_claims: list[str] = _string_list()
    email_signature: str | None = Field(default=None, max_length=2000)
    sms_signoff: str | None = Field(default=None, max_length=160)
    postal_address: str | None = Field(default=None, max_length=500)
    opt_out_email: str | None = Field(default=None, max_length=500)
    opt_out_sms: str | None = Field(default=None, max_length=300)
    opt_out_voicemail: str | None = Field(default=None, max_length=500)
    timezone: str = Field(default="UTC", max_length=64, sa_column_kwargs={"server_default": "UTC"})
    version: int = _version_field()
    created_at: datetime = created_at_field()
    updated_at: datetime = now_field()
    archived_at: datetime | None = timestamp_field()


class Sender(SQLModel, table=True):
    """An identity a brand sends from: an email mailbox, an SMS number or a voice caller id."""

    __tablename__ = "senders"
    __table_args__ = (
        sa.CheckConstraint("kind IN ('email', 'sms', 'voice')", name="kind"),
        sa.CheckConstraint(
            "smtp_security IS NULL OR smtp_security IN ('starttls', 'tls', 'none')", name="smtp_security"
        ),
        sa.CheckConstraint("imap_tls IS NULL OR imap_tls IN ('tls', 'starttls', 'none')", name="imap_tls"),
        sa.CheckConstraint("auth_mode IN ('password', 'oauth2')", name="auth_mode"),
        sa.CheckConstraint("ramp_start IS NULL OR ramp_start > 0", name="ramp_start"),
        sa.CheckConstraint("ramp_step IS NULL OR ramp_step >= 0", name="ramp_step"),
        sa.CheckConstraint(
            "min_gap_seconds IS NULL OR (min_gap_seconds >= 0 AND max_gap_seconds >= min_gap_seconds)", name="gap"
        ),
        sa.Index("ix_senders_brand_id_created_at_id", "brand_id", "created_at", "id"),
    )

    id: uuid.UUID = id_field()
    org_id: uuid.UUID = org_id_field()
    brand_id: uuid.UUID = Field(foreign_key="brands.id", nullable=False, ondelete="CASCADE")
    kind: str = Field(max_length=16)
    label: str | None = Field(default=None, max_length=200)
    # email
    from_name: str | None = Field(default=None, max_length=200)
    from_address: str | None = Field(default=None, max_length=320)
    reply_to: str | None = Field(default=None, max_length=320)
    smtp_host: str | None = Field(default=None, max_length=255)
    smtp_port: int | None = Field(default=None)
    smtp_security: str | None = Field(default=None, max_length=16)
    smtp_username: str | None = Field(default=None, max_length=320)
    smtp_password_encrypted: str | None = Field(default=None, sa_type=sa.Text)
    smtp_password_last4: str | None = Field(default=None, max_length=4)
    hourly_limit: int | None = Field(default=None)
    auth_mode: str = Field(
        default=AuthMode.PASSWORD.value, max_length=16, sa_column_kwargs={"server_default": "password"}
    )
    """``oauth2``: SMTP and IMAP log in with XOAUTH2 and the tokens in ``sender_oauth``."""
    # the mailbox replies and bounces arrive in (read over IMAP when imap_host is set)
    imap_host: str | None = Field(default=None, max_length=255)
    imap_port: int | None = Field(default=None)
    imap_tls: str | None = Field(default=None, max_length=16)
    imap_username: str | None = Field(default=None, max_length=320)
    imap_password_encrypted: str | None = Field(default=None, sa_type=sa.Text)
    imap_password_last4: str | None = Field(default=None, max_length=4)
    imap_folder: str | None = Field(default=None, max_length=255)
    # sms (phone_number or messaging_service_sid) and voice (phone_number is the caller id)
    phone_number: str | None = Field(default=None, max_length=16)
    messaging_service_sid: str | None = Field(default=None, max_length=34)
    tts_voice: str | None = Field(default=None, max_length=64)
    audio_url: str | None = Field(default=None, max_length=2048)
    daily_limit: int | None = Field(default=None)
    # pacing: a daily cap that ramps up (ramp_start a day on its first day, ramp_step more each day up to
    # daily_limit), a random gap between two sends, and daily caps per recipient provider
    ramp_start: int | None = Field(default=None)
    ramp_step: int | None = Field(default=None)
    min_gap_seconds: int | None = Field(default=None)
    max_gap_seconds: int | None = Field(default=None)
    provider_daily_caps: dict[str, int] | None = Field(default=None, sa_type=JSONB(none_as_null=True), nullable=True)
    """Per recipient provider (``google``, ``microsoft``, ``yahoo``, ``other``; from the MX), besides the day's cap."""
    verified_at: datetime | None = timestamp_field()
    last_verification: dict[str, Any] | None = Field(default=None, sa_type=JSONB, nullable=True)
    # health: a rule (or a provider's refusal) pauses the sender; a member's resume starts a cooldown
    paused_at: datetime | None = timestamp_field()
    """Set while the sender is paused: the worker's LOAD picks no paused sender."""
    paused_reason: str | None = Field(default=None, max_length=500)
    paused_rule: str | None = Field(default=None, max_length=32)
    pause_cooldown_until: datetime | None = timestamp_field()
    """Until then no health rule pauses the sender again (set by a resume)."""
    version: int = _version_field()
    created_at: datetime = created_at_field()
    updated_at: datetime = now_field()


class Mailbox(SQLModel, table=True):
    """Where the reading of an email sender's IMAP folder stands: one row per sender.

    ``uidvalidity`` and ``last_uid`` are the cursor: every message up to ``last_uid`` of that
    UIDVALIDITY was handed to the inbound path in the transaction that moved the cursor past it;
    ``last_event_id`` is the event that transaction stored, whose job a restart enqueues again.
    ``lease_owner`` / ``lease_expires_at`` say which poller process reads it now; another
    process takes it over only once the lease has expired.
    """

    __tablename__ = "mailboxes"
    __table_args__ = (
        sa.UniqueConstraint("sender_id"),
        sa.CheckConstraint("state IN ('active', 'paused')", name="state"),
        sa.Index("ix_mailboxes_state_lease_expires_at", "state", "lease_expires_at"),
    )

    id: uuid.UUID = id_field()
    org_id: uuid.UUID = org_id_field()
    sender_id: uuid.UUID = Field(foreign_key="senders.id", nullable=False, ondelete="CASCADE")
    folder: str = Field(default="INBOX", max_length=255)
    uidvalidity: int | None = Field(default=None, sa_type=sa.BigInteger)
    last_uid: int = Field(default=0, sa_type=sa.BigInteger, sa_column_kwargs={"server_default": sa.text("0")})
    last_event_id: uuid.UUID | None = Field(default=None)
    state: str = Field(default=MailboxState.ACTIVE.value, max_length=16, sa_column_kwargs={"server_default": "active"})
    paused_reason: str | None = Field(default=None, max_length=500)
    paused_at: datetime | None = timestamp_field()
    last_polled_at: datetime | None = timestamp_field()
    last_error: str | None = Field(default=None, max_length=500)
    lease_owner: str | None = Field(default=None, max_length=200)
    lease_expires_at: datetime | None = timestamp_field()
    created_at: datetime = created_at_field()
    updated_at: datetime = now_field()


class ProviderCredential(SQLModel, table=True):
    """An organization's account at a provider (one per provider); the secret is ciphertext."""

    __tablename__ = "provider_credentials"
    __table_args__ = (
        sa.UniqueConstraint("org_id", "provider"),
        sa.CheckConstraint("provider IN ('twilio', 'openai')", name="provider"),
    )

    id: uuid.UUID = id_field()
    org_id: uuid.UUID = org_id_field()
    provider: str = Field(max_length=16)
    account_sid: str | None = Field(default=None, max_length=64)
    secret_encrypted: str = Field(sa_type=sa.Text, nullable=False)
    secret_last4: str = Field(max_length=4)
    model: str | None = Field(default=None, max_length=100)
    version: int = _version_field()
    created_at: datetime = created_at_field()
    updated_at: datetime = now_field()


class OAuthClient(SQLModel, table=True):
    """An organization's OAuth 2.0 client at a provider (one per provider); the secret is ciphertext."""

    __tablename__ = "oauth_clients"
    __table_args__ = (
        sa.UniqueConstraint("org_id", "provider"),
        sa.CheckConstraint("provider IN ('google', 'microsoft', 'generic')", name="provider"),
    )

    id: uuid.UUID = id_field()
    org_id: uuid.UUID = org_id_field()
    provider: str = Field(max_length=16)
    client_id: str = Field(max_length=500)
    client_secret_encrypted: str = Field(sa_type=sa.Text, nullable=False)
    client_secret_last4: str = Field(max_length=4)
    authorize_url: str = Field(max_length=2048)
    token_url: str = Field(max_length=2048)
    scope: str = Field(max_length=1000)
    created_at: datetime = created_at_field()
    updated_at: datetime = now_field()


class OAuthAuthorization(SQLModel, table=True):
    """An authorization in progress: the hash of its ``state`` and its PKCE verifier; used once, then deleted."""

    __tablename__ = "oauth_authorizations"

    id: uuid.UUID = id_field()
    org_id: uuid.UUID = org_id_field()
    sender_id: uuid.UUID = Field(foreign_key="senders.id", nullable=False, ondelete="CASCADE")
    provider: str = Field(max_length=16)
    state_hash: str = Field(max_length=64, unique=True)
    verifier_encrypted: str = Field(sa_type=sa.Text, nullable=False)
    redirect_uri: str = Field(max_length=2048)
    expires_at: datetime = timestamp_field(nullable=False)
    created_at: datetime = created_at_field()


class SenderOAuth(SQLModel, table=True):
    """A sender's OAuth tokens (ciphertext) and when the access token expires; one row per sender."""

    __tablename__ = "sender_oauth"
    __table_args__ = (sa.CheckConstraint("status IN ('connected', 'reconnect')", name="status"),)

    sender_id: uuid.UUID = Field(foreign_key="senders.id", primary_key=True, nullable=False, ondelete="CASCADE")
    org_id: uuid.UUID = org_id_field()
    provider: str = Field(max_length=16)
    access_token_encrypted: str = Field(sa_type=sa.Text, nullable=False)
    refresh_token_encrypted: str | None = Field(default=None, sa_type=sa.Text)
    expires_at: datetime = timestamp_field(nullable=False)
    status: str = Field(default=OAuthStatus.CONNECTED.value, max_length=16)
    reason: str | None = Field(default=None, max_length=500)
    connected_at: datetime = created_at_field()
    refreshed_at: datetime | None = timestamp_field()
    updated_at: datetime = now_field()


def ramp(
    daily_max: int, ramp_start: int | None, ramp_step: int | None, since: datetime, now: datetime
) -> tuple[int, int]:
    """``(day, cap)``: the ramp's day (1 on the day it starts, UTC days) and that day's cap.

    Without a ``ramp_start`` the cap is ``daily_max`` from day 1; otherwise it starts at ``ramp_start``
    and grows by ``ramp_step`` a day, never above ``daily_max``.
    """
    day = max(1, (now.date() - since.date()).days + 1)
    if ramp_start is None:
        return day, daily_max
    return day, min(daily_max, ramp_start + (ramp_step or 0) * (day - 1))
