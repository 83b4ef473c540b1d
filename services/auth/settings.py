"""Settings of the auth service."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from libs.settings import CommonSettings


class AuthSettings(CommonSettings):
    """What the auth service reads from ``SDR_AUTH_*`` and the common ``SDR_*`` variables."""

    model_config = SettingsConfigDict(env_prefix="SDR_", env_file=".env", extra="ignore")

    service_name: str = "auth"

    access_token_ttl: int = Field(default=900, ge=60, le=3600, description="Seconds an access token lives.")
    refresh_token_ttl: int = Field(default=30 * 86400, ge=3600, description="Seconds a refresh token lives.")
    invite_ttl: int = Field(default=7 * 86400, ge=300, description="Seconds an invite stays valid.")
    signing_key_cache_seconds: float = Field(default=30.0, ge=0, description="How long a process reuses its key.")

    # OWASP Password Storage Cheat Sheet: argon2id, m=19 MiB, t=2, p=1 at least.
    argon2_time_cost: int = Field(default=2, ge=1)
    argon2_memory_kib: int = Field(default=19 * 1024, ge=7 * 1024)
    argon2_parallelism: int = Field(default=1, ge=1)
    hash_concurrency: int = Field(default=2, ge=1, description="Password hashes computed at once per process.")
    hash_queue_limit: int = Field(default=32, ge=0, description="Hashes allowed to wait; beyond it, 429.")

    # Failed logins: from `soft` failures on, each failure locks for 2**(n-soft) s (slow down); at
    # `hard`, the subject is locked out for base * 2**(lockouts-1) s, capped at max.
    login_account_soft: int = Field(default=5, ge=1)
    login_account_hard: int = Field(default=10, ge=1)
    login_account_lockout: int = Field(default=60, ge=1)
    login_account_lockout_max: int = Field(default=900, ge=1)
    login_address_soft: int = Field(default=20, ge=1)
    login_address_hard: int = Field(default=50, ge=1)
    login_address_lockout: int = Field(default=300, ge=1)
    login_address_lockout_max: int = Field(default=3600, ge=1)
    login_window: int = Field(default=900, ge=1, description="Seconds failures are remembered.")
    trusted_proxies: list[str] = Field(
        default_factory=lambda: ["127.0.0.1", "::1"],
        description="Peers whose X-Forwarded-For is believed (the gateway).",
    )

    public_base_url: str = Field(
        default="http://127.0.0.1:8000",
        description="Public URL of the gateway: the OpenID Connect redirect URI is built on it.",
    )
    oidc_issuer: str | None = Field(
        default=None, description="OpenID Connect issuer URL for single sign-on; unset, SSO is off."
    )
    oidc_client_id: str | None = Field(default=None, description="Client id registered at the OIDC provider.")
    oidc_client_secret: SecretStr | None = Field(default=None, description="Client secret at the OIDC provider.")
    oidc_name: str = Field(default="SSO", max_length=40, description="Label of the sign-in button.")
    oidc_scopes: str = Field(default="openid email profile", description="Scopes asked for (space-separated).")
    oidc_timeout: float = Field(default=10.0, gt=0, le=60, description="Seconds each call to the provider may take.")
    oidc_state_ttl: int = Field(default=600, ge=60, le=3600, description="Seconds a sign-in may take at the provider.")
    oidc_metadata_cache_seconds: int = Field(
        default=3600, ge=0, description="How long the discovery document and the JWKS are reused."
    )

    @property
    def oidc_enabled(self) -> bool:
        """Whether single sign-on is configured (an issuer and a client id)."""
        return bool(self.oidc_issuer and self.oidc_client_id)
