"""Settings of the brand service."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from libs.settings import CommonSettings


class BrandSettings(CommonSettings):
    """What the brand service reads from ``SDR_BRAND_*`` and the common ``SDR_*`` variables."""

    model_config = SettingsConfigDict(env_prefix="SDR_", env_file=".env", extra="ignore")

    service_name: str = "brand"
    port: int = 8002
