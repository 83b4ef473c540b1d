"""Settings of the inbound endpoints and jobs (``SDR_*`` like every other setting)."""

from __future__ import annotations

from typing import Any

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from libs.settings import CommonSettings, Environment


class InboundSettings(CommonSettings):
    """What the inbound endpoints and the ``inbound`` queue's jobs read from the environment."""

    model_config = SettingsConfigDict(env_prefix="SDR_", env_file=".env", extra="ignore")

    public_base_url: str | None = Field(
        default=None,
        description=(
            "Public URL of the gateway (e.g. https://sdr.example.com). When set it wins over the forwarding "
            "headers for Twilio signature checks, and it prefixes tracked links."
        ),
    )
    inbound_email_secret: SecretStr | None = Field(
        default=None,
        description=(
            "Shared secret of /hooks/email/inbound: sent as X-Inbound-Secret, or used as the HMAC key of "
            "X-Inbound-Signature (t=<unix>,v1=<hex hmac_sha256(secret, f'{t}.{body}')>). Unset: the hook refuses all."
        ),
    )
    inbound_email_max_bytes: int = Field(default=10 * 1024 * 1024, ge=1024, description="Largest inbound MIME body.")
    inbound_signature_tolerance: int = Field(
        default=300, ge=1, description="Seconds an X-Inbound-Signature timestamp may be off."
    )
    webhooks_allow_private: bool = Field(
        default=False,
        description=(
            "Let webhook URLs resolve to private, loopback or reserved addresses (local development, on-premises); "
            "defaults to on outside production, off in production."
        ),
    )
    webhook_timeout: float = Field(default=10.0, gt=0, le=60, description="Seconds one webhook delivery may take.")
    webhook_max_attempts: int = Field(default=8, ge=1, le=30, description="Attempts before a delivery is failed.")
    webhook_backoff_base: float = Field(
        default=30.0, ge=0, description="Delay before the first retry; doubles each attempt (0: retry at once)."
    )
    webhook_backoff_max: float = Field(default=6 * 3600.0, ge=0, description="Longest delay between two attempts.")

    @model_validator(mode="before")
    @classmethod
    def _private_webhooks_by_environment(cls, data: Any) -> Any:
        # Unset, a loopback receiver is fine on a developer's machine and never in production.
        if isinstance(data, dict) and data.get("webhooks_allow_private") is None:
            env = data.get("env", Environment.DEVELOPMENT)
            data = {**data, "webhooks_allow_private": str(getattr(env, "value", env)) != Environment.PRODUCTION.value}
        return data


def inbound_settings_from(common: CommonSettings) -> InboundSettings:
    """Return ``common`` as :class:`InboundSettings`: its values kept, inbound fields from the environment."""
    if isinstance(common, InboundSettings):
        return common
    values: dict[str, Any] = {name: getattr(common, name) for name in CommonSettings.model_fields}
    return InboundSettings(**values)
