"""Settings of the worker fleet and the ticker."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from libs.settings import CommonSettings


class WorkerSettings(CommonSettings):
    """What workers and the ticker read from the environment."""

    model_config = SettingsConfigDict(env_prefix="SDR_", env_file=".env", extra="ignore")

    service_name: str = "worker"
    smtp_sink_host: str = "127.0.0.1"
    smtp_sink_port: int = Field(default=1025, description="Local SMTP sink used when a sender has no SMTP host.")
