"""Settings of the campaign service."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from libs.settings import SendingCapsSettings


class CampaignSettings(SendingCapsSettings):
    """What the campaign service reads from ``SDR_CAMPAIGN_*`` and the common ``SDR_*`` variables."""

    model_config = SettingsConfigDict(env_prefix="SDR_", env_file=".env", extra="ignore")

    service_name: str = "campaign"

    # leads: CSV imports and contact normalisation
    import_max_bytes: int = Field(default=200 * 1024 * 1024, ge=1024, description="Largest CSV upload accepted.")
    import_max_rows: int = Field(default=1_000_000, ge=1, description="Most data rows one CSV import may hold.")
    import_chunk_rows: int = Field(default=20_000, ge=1, description="Rows an import commits per transaction.")
    dns_nameservers: list[str] = Field(
        default_factory=list,
        description='Resolvers for the optional MX check of imports, as ["host" or "host:port", ...]; '
        "empty: the system's (/etc/resolv.conf).",
    )
    dns_timeout: float = Field(default=3.0, gt=0, le=30, description="Seconds one domain's MX lookup may take.")
    default_phone_region: str = Field(
        default="US", min_length=2, max_length=2, description="Country assumed for phone numbers without one."
    )

    # campaigns: launch checks the brand's readiness over HTTP, with the caller's token
    brand_url: str = Field(
        default="http://127.0.0.1:8002", description="Base URL of the brand service (readiness checks at launch)."
    )
    brand_timeout: float = Field(default=5.0, gt=0, le=60, description="Seconds a readiness check may take.")
