"""Settings of the gateway: where the upstreams are, how to route to them, how long to wait."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from gateway.ratelimit import COSTLY_PATHS, EXEMPT_PREFIXES
from gateway.routes import DEFAULT_ROUTES, PUBLIC_PREFIXES
from libs.settings import CommonSettings, Environment

TransportName = Literal["raw", "aiohttp", "httpx", "httpx-aiohttp"]


class GatewaySettings(CommonSettings):
    """What the gateway reads from the ``SDR_*`` variables (JSON for the mappings and lists)."""

    model_config = SettingsConfigDict(env_prefix="SDR_", env_file=".env", extra="ignore")

    service_name: str = "gateway"
    auth_url: str = Field(default="http://127.0.0.1:8001", description="Base URL of the auth service.")
    brand_url: str = Field(default="http://127.0.0.1:8002", description="Base URL of the brand service.")
    campaign_url: str = Field(default="http://127.0.0.1:8003", description="Base URL of the campaign service.")
    upstreams: dict[str, str] = Field(
        default_factory=dict,
        description='More upstreams by name, as JSON ({"name": "http://host:port"}); they override the three above.',
    )
    routes: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_ROUTES),
        description='Path prefix -> upstream name, as JSON ({"/api/brands": "brand"}); the longest prefix wins.',
    )
    public_prefixes: list[str] = Field(
        default_factory=lambda: list(PUBLIC_PREFIXES),
        description="Prefixes under /api/ that need no access token at the edge, as a JSON list.",
    )
    proxy_transport: TransportName = Field(
        default="raw", description="HTTP client the proxy uses for network upstreams (see bench/gateway.py)."
    )
    proxy_pool_size: int = Field(default=100, ge=1, le=10_000, description="Connections kept per upstream.")
    proxy_connect_timeout: float = Field(default=2.0, gt=0, description="Seconds to open a connection upstream.")
    proxy_read_timeout: float = Field(
        default=30.0, gt=0, description="Seconds to wait for the response head or the next body chunk upstream."
    )
    proxy_max_body_bytes: int = Field(
        default=25 * 1024 * 1024, ge=1024, description="Largest request body the gateway forwards (413 above)."
    )
    proxy_access_log: bool = Field(default=False, description="Log every proxied request (errors are always logged).")
    api_key_cache_size: int = Field(default=10_000, ge=1, description="Exchanged API-key tokens kept in memory.")
    readiness_timeout: float = Field(default=2.0, gt=0, description="Seconds each /readyz check may take.")
    openapi_cache_seconds: float = Field(default=10.0, ge=0, description="How long the merged OpenAPI is reused.")
    ops_session_seconds: int = Field(default=3600, ge=60, description="How long an operator's browser session lasts.")
    ops_cookie_secure: bool | None = Field(
        default=None, description="Mark operator cookies Secure (default: when the request came over HTTPS)."
    )
    ops_dashboard_disable_delete: bool = Field(
        default=True,
        description="Refuse rq-dashboard's delete-job and empty-queue actions (the ledger needs the jobs).",
    )
    ops_stream_interval: float = Field(default=1.0, gt=0, description="Seconds between live-stream snapshots.")
    ops_ledger_interval: float = Field(
        default=5.0, gt=0, description="Seconds between reads of the ledger for the live streams."
    )
    ops_stream_buffer: int = Field(
        default=32, ge=1, le=10_000, description="Frames a live-stream subscriber may fall behind before it is dropped."
    )
    ops_stream_send_timeout: float = Field(
        default=10.0,
        gt=0,
        description="Seconds a live-stream client may take to accept one frame before it is dropped.",
    )
    metrics_token: SecretStr | None = Field(
        default=None, description="Bearer token that may read /metrics (operators always may)."
    )
    metrics_ledger_cache_seconds: float = Field(
        default=15.0, ge=0, description="How long /metrics reuses its ledger counts."
    )
    rate_limit_enabled: bool | None = Field(
        default=None, description="Rate-limit requests at the edge (default: on, except under SDR_ENV=test)."
    )
    rate_limit_redis_url: str | None = Field(default=None, description="Redis of the budgets (default: SDR_REDIS_URL).")
    rate_limit_window: float = Field(default=60.0, gt=0, le=86_400, description="Seconds every budget spans.")
    rate_limit_org_read: int = Field(default=1200, ge=1, description="GET/HEAD requests per window per organization.")
    rate_limit_org_write: int = Field(default=600, ge=1, description="Other requests per window per organization.")
    rate_limit_org_costly: int = Field(
        default=10, ge=1, description="Launches, imports, test sends, sender checks per window per organization."
    )
    rate_limit_key_read: int = Field(default=600, ge=1, description="GET/HEAD requests per window per API key.")
    rate_limit_key_write: int = Field(default=300, ge=1, description="Other requests per window per API key.")
    rate_limit_key_costly: int = Field(default=5, ge=1, description="Costly requests per window per API key.")
    rate_limit_address_read: int = Field(
        default=300, ge=1, description="GET/HEAD requests per window per client address without a token (/api/)."
    )
    rate_limit_address_write: int = Field(
        default=120, ge=1, description="Other requests per window per client address without a token (/api/)."
    )
    rate_limit_costly_paths: list[str] = Field(
        default_factory=lambda: list(COSTLY_PATHS),
        description='Requests that cost money or mail, as a JSON list of "METHOD path-regex".',
    )
    rate_limit_exempt_prefixes: list[str] = Field(
        default_factory=lambda: list(EXEMPT_PREFIXES),
        description="Public prefixes left out of the per-address budget (they throttle themselves), as JSON.",
    )
    rate_limit_fail_open: bool = Field(
        default=True, description="Let requests through when Redis cannot be asked (off: answer 503)."
    )
    rate_limit_timeout: float = Field(default=0.5, gt=0, description="Seconds a budget check may wait for Redis.")

    @property
    def rate_limit_on(self) -> bool:
        """Whether the edge rate-limits (tests turn it on explicitly)."""
        if self.rate_limit_enabled is None:
            return self.env is not Environment.TEST
        return self.rate_limit_enabled

    @property
    def upstream_urls(self) -> dict[str, str]:
        """Every upstream by name, without a trailing slash."""
        urls = {"auth": self.auth_url, "brand": self.brand_url, "campaign": self.campaign_url, **self.upstreams}
        return {name: url.rstrip("/") for name, url in urls.items()}

    @property
    def auth_jwks_url(self) -> str:
        """The JWKS the edge verifies access tokens against (served by the auth upstream)."""
        return self.upstream_urls["auth"] + "/api/auth/jwks.json"

    @property
    def api_key_exchange_path(self) -> str:
        """Where the auth upstream exchanges API keys for access tokens."""
        return "/api/auth/api-keys/exchange"
