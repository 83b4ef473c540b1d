"""Settings of customer webhook delivery (``SDR_*`` like every other setting)."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from libs.settings import CommonSettings, Environment


class WebhookSettings(CommonSettings):
    """What the webhook endpoints API and the delivery job read from the environment."""

    model_config = SettingsConfigDict(env_prefix="SDR_", env_file=".env", extra="ignore")

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


def webhook_settings_from(common: CommonSettings) -> WebhookSettings:
    """Return ``common`` as :class:`WebhookSettings`: its values kept, webhook fields from the environment."""
    if isinstance(common, WebhookSettings):
        return common
    values: dict[str, Any] = {name: getattr(common, name) for name in CommonSettings.model_fields}
    return WebhookSettings(**values)
