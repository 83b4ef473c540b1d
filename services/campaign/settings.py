"""Settings of the campaign service."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from libs.settings import CommonSettings


class CampaignSettings(CommonSettings):
    """What the campaign service reads from ``SDR_CAMPAIGN_*`` and the common ``SDR_*`` variables."""

    model_config = SettingsConfigDict(env_prefix="SDR_", env_file=".env", extra="ignore")

    service_name: str = "campaign"
    port: int = 8003
