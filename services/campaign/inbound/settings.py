"""Settings of the inbound endpoints and jobs (``SDR_*`` like every other setting)."""

from __future__ import annotations

from typing import Any

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from libs.settings import CommonSettings
from services.campaign.webhooks.settings import WebhookSettings


class InboundSettings(WebhookSettings):
    """What the inbound endpoints and the ``inbound`` queue's jobs read from the environment (webhooks' included)."""

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


def inbound_settings_from(common: CommonSettings) -> InboundSettings:
    """Return ``common`` as :class:`InboundSettings`: its values kept, inbound fields from the environment."""
    if isinstance(common, InboundSettings):
        return common
    values: dict[str, Any] = {name: getattr(common, name) for name in CommonSettings.model_fields}
    return InboundSettings(**values)
