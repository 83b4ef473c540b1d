"""Request and response shapes of the brand service: strict, bounded, never carrying a secret out."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from libs.db.models.brand import AuthMode, ImapTls, MailboxState, OAuthStatus, Provider, SenderKind, SmtpSecurity
from services.brand.validation import (
    DailyLimit,
    EmailAddress,
    ForbiddenClaims,
    HostName,
    HourlyLimit,
    HttpsUrl,
    ImapFolder,
    Label,
    MessagingServiceSid,
    Name,
    OpenAIKey,
    OpenAIModel,
    PhoneE164,
    Port,
    ProofPoints,
    SmsLine,
    SmsOptOut,
    SmtpPassword,
    SmtpUsername,
    Text500,
    Text2000,
    TimeZoneName,
    TtsVoice,
    TwilioAccountSid,
    TwilioAuthToken,
    WebUrl,
)


class _Strict(BaseModel):
    """Unknown fields are an error (no mass assignment of ``org_id``, ``verified_at``, ...)."""

    model_config = ConfigDict(extra="forbid")


# brands ------------------------------------------------------------------------------------


class BrandFields(_Strict):
    """The editable facts of a brand (all optional here; BrandCreate requires a name)."""

    website: WebUrl | None = None
    description: Text2000 | None = None
    value_proposition: Text2000 | None = None
    target_audience: Text2000 | None = None
    tone_of_voice: Text500 | None = None
    proof_points: ProofPoints | None = None
    forbidden_claims: ForbiddenClaims | None = None
    email_signature: Text2000 | None = None
    sms_signoff: SmsLine | None = None
    postal_address: Text500 | None = Field(default=None, description="Physical postal address (CAN-SPAM).")
    opt_out_email: Text500 | None = Field(default=None, description="Opt-out wording appended to emails.")
    opt_out_sms: SmsOptOut | None = Field(default=None, description="Opt-out wording for SMS (e.g. Reply STOP).")
    opt_out_voicemail: Text500 | None = Field(default=None, description="Opt-out wording spoken in voicemails.")
    timezone: TimeZoneName | None = Field(default=None, description="Default IANA time zone of the brand.")


class BrandCreate(BrandFields):
    """A new brand."""

    name: Name


class BrandUpdate(BrandFields):
    """Changes to a brand; only the fields sent are applied (``null`` clears an optional field)."""

    name: Name | None = None


class BrandRead(BaseModel):
    """A brand as the API shows it; ``version`` is also the ``ETag``."""

    id: uuid.UUID
    name: str
    website: str | None
    description: str | None
    value_proposition: str | None
    target_audience: str | None
    tone_of_voice: str | None
    proof_points: list[str]
    forbidden_claims: list[str]
    email_signature: str | None
    sms_signoff: str | None
    postal_address: str | None
    opt_out_email: str | None
    opt_out_sms: str | None
    opt_out_voicemail: str | None
    timezone: str
    version: int
    created_at: datetime
    updated_at: datetime
    archived_at: datetime | None


class DeleteOutcome(StrEnum):
    """What ``DELETE /api/brands/{id}`` did."""

    DELETED = "deleted"
    ARCHIVED = "archived"


# senders -----------------------------------------------------------------------------------


class SecretState(BaseModel):
    """What the API reveals about a stored secret: that it is set, and its last four characters."""

    set: bool
    last4: str | None = None


class SenderFields(_Strict):
    """Sender settings shared by create and update; which ones apply depends on ``kind``."""

    label: Label | None = None
    # email
    from_name: Name | None = None
    from_address: EmailAddress | None = None
    reply_to: EmailAddress | None = None
    smtp_host: HostName | None = None
    smtp_port: Port | None = None
    smtp_security: SmtpSecurity | None = None
    smtp_username: SmtpUsername | None = None
    smtp_password: SmtpPassword | None = Field(default=None, description="Write-only; stored encrypted.")
    hourly_limit: HourlyLimit | None = None
    imap_host: HostName | None = Field(
        default=None,
        description="Email only: the IMAP server of the mailbox replies and bounces arrive in; when set, the "
        "mailbox is read (IDLE or polling) and every new message goes through the inbound path.",
    )
    imap_port: Port | None = Field(default=None, description="Defaults from `imap_tls`: tls 993, starttls/none 143.")
    imap_tls: ImapTls | None = Field(default=None, description="tls (default), starttls or none.")
    imap_username: SmtpUsername | None = Field(default=None, description="Required with `imap_host`.")
    imap_password: SmtpPassword | None = Field(
        default=None, description="Write-only; stored encrypted. Required with `imap_host`."
    )
    imap_folder: ImapFolder | None = Field(default=None, description="The folder to read (default INBOX).")
    # sms / voice
    phone_number: PhoneE164 | None = Field(
        default=None,
        description="SMS number or voice caller id, E.164. Required for a voice sender; an SMS sender needs "
        "this or `messaging_service_sid`.",
    )
    messaging_service_sid: MessagingServiceSid | None = Field(
        default=None, description="SMS only: a Twilio Messaging Service instead of (or besides) `phone_number`."
    )
    tts_voice: TtsVoice | None = Field(
        default=None,
        description="Voice only: the text-to-speech voice. A voice sender needs this or `audio_url`; without "
        "either the answer is a 422 whose `errors[].field` is `tts_voice`.",
    )
    audio_url: HttpsUrl | None = Field(
        default=None, description="Voice only: a recording (https) to play instead of text-to-speech."
    )
    daily_limit: DailyLimit | None = None


class SenderCreate(SenderFields):
    """A new sender under a brand."""

    kind: SenderKind


class SenderUpdate(SenderFields):
    """Changes to a sender; changing SMTP settings clears its verification."""


class VerificationResult(BaseModel):
    """The outcome of the last SMTP check: which stage it reached and what the server said."""

    verified: bool
    stage: str = Field(description="connect, tls, ehlo or auth: the last stage reached.")
    code: int | None = Field(default=None, description="The server's SMTP reply code, if it answered.")
    reply: str | None = Field(default=None, description="The server's reply text (or the connection error).")
    server: str
    checked_at: datetime


class MailboxRead(BaseModel):
    """How the reading of an email sender's IMAP mailbox stands."""

    state: MailboxState = Field(description="active, or paused (after a refused login: fix the settings or resume it).")
    paused_reason: str | None = Field(description="Why it is paused, in the IMAP server's words.")
    paused_at: datetime | None
    last_polled_at: datetime | None = Field(description="When the mailbox was last read to its end.")
    last_error: str | None = Field(description="The last error reading it (network errors are retried).")
    folder: str


class SenderOAuthRead(BaseModel):
    """How an email sender's OAuth 2.0 connection stands (never its tokens)."""

    provider: str
    status: OAuthStatus = Field(description="connected, or reconnect once the provider refused the refresh token.")
    reason: str | None = Field(description="Why it must be connected again, in the provider's words.")
    expires_at: datetime = Field(description="When the current access token expires (it is renewed before).")
    connected_at: datetime
    refreshed_at: datetime | None


class SenderRead(BaseModel):
    """A sender as the API shows it: the SMTP and IMAP passwords only as ``set``/``last4``."""

    id: uuid.UUID
    brand_id: uuid.UUID
    kind: SenderKind
    label: str | None
    from_name: str | None
    from_address: str | None
    reply_to: str | None
    smtp_host: str | None
    smtp_port: int | None
    smtp_security: SmtpSecurity | None
    smtp_username: str | None
    smtp_password: SecretState
    hourly_limit: int | None
    imap_host: str | None
    imap_port: int | None
    imap_tls: ImapTls | None
    imap_username: str | None
    imap_password: SecretState
    imap_folder: str | None
    auth_mode: AuthMode = Field(
        default=AuthMode.PASSWORD,
        description="password, or oauth2 once connected with OAuth (SMTP and IMAP then log in with XOAUTH2).",
    )
    oauth: SenderOAuthRead | None = Field(default=None, description="The OAuth connection, once made.")
    mailbox: MailboxRead | None = Field(
        description="The mailbox's state once the poller has seen it (email senders with `imap_host`)."
    )
    phone_number: str | None
    messaging_service_sid: str | None
    tts_voice: str | None
    audio_url: str | None
    daily_limit: int | None
    verified: bool = Field(
        description="Whether the sender's SMTP login was verified and its SMTP settings have not changed since "
        "(`verified_at` is set). SMS and voice senders are not verified this way: always false."
    )
    verified_at: datetime | None
    last_verification: VerificationResult | None
    paused_at: datetime | None = Field(
        default=None,
        description="Set while a health rule keeps the sender paused: nothing is sent from it until a member "
        "resumes it (`POST .../resume`).",
    )
    paused_rule: str | None = Field(
        default=None,
        description="The rule that paused it: smtp_auth (530/535), smtp_policy (552/554), hard_bounce_rate "
        "(over 5% of the last 100 sends) or twilio_auth (Twilio 20003: every SMS and voice sender of the "
        "organization).",
    )
    paused_reason: str | None = Field(default=None, description="Why, in words.")
    pause_cooldown_until: datetime | None = Field(
        default=None, description="After a resume: until then no health rule pauses the sender again."
    )
    version: int
    created_at: datetime
    updated_at: datetime


# provider credentials ----------------------------------------------------------------------


class CredentialCreate(_Strict):
    """Credentials for one provider: Twilio (``account_sid`` + ``auth_token``) or OpenAI (``api_key``, ``model``)."""

    provider: Provider
    account_sid: TwilioAccountSid | None = None
    auth_token: TwilioAuthToken | None = Field(default=None, description="Write-only; stored encrypted.")
    api_key: OpenAIKey | None = Field(default=None, description="Write-only; stored encrypted.")
    model: OpenAIModel | None = None


class CredentialUpdate(_Strict):
    """Changes to stored credentials; a secret sent replaces the stored one."""

    account_sid: TwilioAccountSid | None = None
    auth_token: TwilioAuthToken | None = None
    api_key: OpenAIKey | None = None
    model: OpenAIModel | None = None


class CredentialRead(BaseModel):
    """Stored credentials as the API shows them: secrets only as ``set``/``last4``."""

    id: uuid.UUID
    provider: Provider
    account_sid: str | None
    auth_token: SecretState | None
    api_key: SecretState | None
    model: str | None
    version: int
    created_at: datetime
    updated_at: datetime


# readiness ---------------------------------------------------------------------------------


class Channel(StrEnum):
    """A channel a campaign step can use."""

    EMAIL = "email"
    SMS = "sms"
    VOICEMAIL = "voicemail"


class Gap(BaseModel):
    """One thing missing before a channel may launch; ``code`` is stable, ``message`` is for people."""

    code: str
    message: str
    field: str | None = None


class ChannelReadiness(BaseModel):
    """Whether campaigns on one channel may launch with this brand, and what blocks them."""

    ready: bool
    missing: list[Gap]
    warnings: list[Gap]


class Readiness(BaseModel):
    """Per channel, what is missing before a campaign on it may launch (see the service README)."""

    brand_id: uuid.UUID
    ready: bool = Field(description="True when every channel is ready.")
    channels: dict[Channel, ChannelReadiness]
    checked_at: datetime

    def for_channel(self, channel: Channel) -> ChannelReadiness:
        """Return one channel's readiness."""
        return self.channels[channel]


def dump(model: BaseModel) -> dict[str, Any]:
    """Return the JSON-ready dict of ``model``."""
    return model.model_dump(mode="json")
