"""Settings of the brand service."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from libs.settings import CommonSettings, Environment


class BrandSettings(CommonSettings):
    """What the brand service reads from ``SDR_BRAND_*`` and the common ``SDR_*`` variables."""

    model_config = SettingsConfigDict(env_prefix="SDR_", env_file=".env", extra="ignore")

    service_name: str = "brand"
    smtp_verify_timeout: float = Field(
        default=10.0, gt=0, le=60, description="Seconds each step of an SMTP check may take (connect, TLS, login)."
    )
    smtp_ca_file: Path | None = Field(
        default=None, description="Extra CA bundle (PEM) trusted for SMTP TLS, on top of the system's."
    )
    smtp_allow_private_hosts: bool | None = Field(
        default=None,
        description="Let SMTP checks connect to private/loopback addresses; defaults to on outside production.",
    )

    @property
    def smtp_private_hosts_allowed(self) -> bool:
        """Whether SMTP checks may reach private addresses (never by default in production)."""
        if self.smtp_allow_private_hosts is None:
            return self.env is not Environment.PRODUCTION
        return self.smtp_allow_private_hosts

    @property
    def twilio_required(self) -> bool:
        """Whether SMS and voicemail need Twilio credentials to launch (elsewhere the local recorder takes them)."""
        return self.env is Environment.PRODUCTION
