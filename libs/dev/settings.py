"""Settings of the ``sdr`` command line: where each process listens and how ``sdr dev`` runs them."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from libs.settings import CommonSettings


class DevSettings(CommonSettings):
    """Ports, bind address and supervision knobs read by ``sdr serve``, ``sdr sink`` and ``sdr dev``."""

    model_config = SettingsConfigDict(env_prefix="SDR_", env_file=".env", extra="ignore")

    service_name: str = "sdr"
    host: str = Field(default="127.0.0.1", description="Address the gateway and services bind to.")
    gateway_port: int = Field(default=8000, ge=1, le=65535)
    auth_port: int = Field(default=8001, ge=1, le=65535)
    brand_port: int = Field(default=8002, ge=1, le=65535)
    campaign_port: int = Field(default=8003, ge=1, le=65535)
    smtp_sink_host: str = Field(default="127.0.0.1", description="Where the local SMTP sink listens.")
    smtp_sink_port: int = Field(default=1025, ge=1, le=65535)
    embedded_redis_port: int = Field(
        default=0, ge=0, le=65535, description="Loopback port of the embedded Redis; 0 picks a free one."
    )
    dev_workers: int = Field(default=2, ge=1, le=64, description="RQ worker processes `sdr dev` runs.")
    dev_ready_timeout: float = Field(default=90.0, gt=0, description="Seconds `sdr dev` waits for /readyz.")
    dev_grace_seconds: float = Field(
        default=10.0, gt=0, description="Seconds a child gets between SIGTERM and SIGKILL on shutdown."
    )
    public_base_url: str | None = Field(default=None, description="Public URL of the gateway, when not the local one.")
    inbound_email_secret: SecretStr | None = Field(
        default=None,
        description="Secret of /hooks/email/inbound; unset, `sdr dev` generates a development one in the data dir.",
    )

    def port_of(self, app: str) -> int:
        """Return the configured port of ``app`` (gateway, auth, brand or campaign)."""
        return int(getattr(self, f"{app}_port"))

    def url_of(self, app: str) -> str:
        """Return the loopback base URL of ``app``."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host  # noqa: S104 - comparing, not binding
        return f"http://{host}:{self.port_of(app)}"
