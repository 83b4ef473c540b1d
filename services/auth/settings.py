"""Settings of the auth service."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from libs.settings import CommonSettings


class AuthSettings(CommonSettings):
    """What the auth service reads from ``SDR_AUTH_*`` and the common ``SDR_*`` variables."""

    model_config = SettingsConfigDict(env_prefix="SDR_", env_file=".env", extra="ignore")

    service_name: str = "auth"
    port: int = 8001
