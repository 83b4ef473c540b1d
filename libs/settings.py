"""Settings shared by every box: one pydantic-settings class each, env prefix ``SDR_``."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_SECRET = "dev-only-change-me"  # noqa: S105 - a development default that production refuses


class Environment(StrEnum):
    """Where the process runs; production refuses development defaults."""

    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


def normalize_database_url(url: str) -> str:
    """Return ``url`` with the psycopg driver named, as SQLAlchemy expects."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


class CommonSettings(BaseSettings):
    """What every process needs: where the data lives, how to log, who signs tokens."""

    model_config = SettingsConfigDict(env_prefix="SDR_", env_file=".env", extra="ignore")

    env: Environment = Environment.DEVELOPMENT
    data_dir: Path = Field(default=Path(".data"), description="Embedded PostgreSQL/Redis and sinks live here.")
    database_url: str = Field(
        default="postgresql+psycopg://postgres@127.0.0.1:5432/tidewater",
        description="PostgreSQL URL (postgresql:// is accepted and given the psycopg driver).",
    )
    database_pool_size: int = Field(default=10, ge=1, le=200)
    redis_url: str = "redis://127.0.0.1:6379/0"
    log_level: str = "INFO"
    log_json: bool | None = Field(default=None, description="JSON logs; defaults to on in production.")
    service_name: str = "tidewater"
    jwt_issuer: str = "tidewater"
    jwt_audience: str = "tidewater-api"
    jwks_url: str = Field(
        default="http://127.0.0.1:8001/api/auth/jwks.json",
        description="Where services fetch the auth service's public keys.",
    )
    secret_key: SecretStr = Field(
        default=SecretStr(DEV_SECRET), description="Signs links and derives encryption keys; set in production."
    )
    encryption_keys: SecretStr | None = Field(
        default=None,
        description="Older secret keys (comma-separated) still accepted to decrypt stored secrets during a rotation.",
    )
    max_body_bytes: int = Field(default=1_048_576, ge=1024, description="Largest JSON body a service accepts.")

    @field_validator("database_url")
    @classmethod
    def _driver(cls, value: str) -> str:
        return normalize_database_url(value)

    @property
    def json_logs(self) -> bool:
        """Whether log lines are JSON."""
        return self.env is Environment.PRODUCTION if self.log_json is None else self.log_json

    @model_validator(mode="after")
    def _refuse_dev_defaults_in_production(self) -> CommonSettings:
        if self.env is Environment.PRODUCTION and self.secret_key.get_secret_value() == DEV_SECRET:
            raise ValueError("SDR_SECRET_KEY must be set in production")
        return self


class SendingCapsSettings(CommonSettings):
    """The default sending caps: the worker's gate applies them, the campaign service's forecast predicts with them.

    A sender's own hourly or daily limit wins over these.
    """

    email_hourly_cap: int = Field(default=200, ge=1, description="Default per-sender hourly email cap.")
    email_daily_cap: int = Field(default=2000, ge=1, description="Default per-sender daily email cap.")
    sms_hourly_cap: int = Field(default=300, ge=1, description="Default per-sender hourly SMS cap.")
    sms_daily_cap: int = Field(default=2000, ge=1, description="Default per-sender daily SMS cap.")
    domain_pacing_per_minute: int = Field(
        default=30, ge=1, description="Emails per minute to one recipient domain from one organization."
    )
