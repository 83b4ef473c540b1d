"""Settings of the mailbox poller (``sdr mail``), ``SDR_MAIL_*`` beside the inbound ones."""

from __future__ import annotations

import ssl
from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from libs.settings import Environment
from services.campaign.inbound.settings import InboundSettings


class MailSettings(InboundSettings):
    """What ``sdr mail`` reads from the environment (the inbound settings included)."""

    model_config = SettingsConfigDict(env_prefix="SDR_", env_file=".env", extra="ignore")

    mail_poll_interval: float = Field(
        default=30.0, ge=0.2, le=3600, description="Seconds between checks of a mailbox whose server has no IDLE."
    )
    mail_idle_seconds: float = Field(
        default=300.0, ge=0.5, le=1740, description="Longest IDLE before it is renewed (RFC 2177: under 29 minutes)."
    )
    mail_lease_seconds: float = Field(
        default=60.0, ge=1.0, le=3600, description="How long a poller's claim on a mailbox lasts unless renewed."
    )
    mail_discover_interval: float = Field(
        default=10.0, ge=0.2, le=3600, description="Seconds between looks for mailboxes no poller reads."
    )
    mail_max_mailboxes: int = Field(default=200, ge=1, le=10_000, description="Mailboxes one process reads at most.")
    mail_timeout: float = Field(default=30.0, ge=1.0, le=600, description="Seconds an IMAP operation may take.")
    mail_backoff_base: float = Field(default=2.0, ge=0.1, le=600, description="First wait after a network error.")
    mail_backoff_max: float = Field(default=300.0, ge=1.0, le=86_400, description="Longest wait between attempts.")
    mail_allow_private_hosts: bool | None = Field(
        default=None,
        description="Let the poller connect to private/loopback IMAP hosts; defaults to on outside production.",
    )
    mail_ca_file: Path | None = Field(
        default=None, description="Extra CA bundle (PEM) trusted for IMAP TLS, on top of the system's."
    )
    mail_fetch_batch: int = Field(default=50, ge=1, le=1000, description="Messages fetched per IMAP FETCH.")

    @model_validator(mode="after")
    def _renewal_fits(self) -> MailSettings:
        if self.mail_discover_interval >= self.mail_lease_seconds:
            raise ValueError("SDR_MAIL_DISCOVER_INTERVAL must be shorter than SDR_MAIL_LEASE_SECONDS")
        return self

    @property
    def private_hosts_allowed(self) -> bool:
        """Whether mailboxes on private addresses may be read (never by default in production)."""
        if self.mail_allow_private_hosts is None:
            return self.env is not Environment.PRODUCTION
        return self.mail_allow_private_hosts

    def ssl_context(self) -> ssl.SSLContext:
        """The trust store of IMAP TLS: the system's CAs, plus ``SDR_MAIL_CA_FILE``."""
        context = ssl.create_default_context()
        if self.mail_ca_file is not None:
            context.load_verify_locations(cafile=str(self.mail_ca_file))
        return context

    @property
    def renew_every(self) -> float:
        """How often a reader renews its lease: a third of it."""
        return self.mail_lease_seconds / 3
