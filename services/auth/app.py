"""The auth service's Litestar app: wiring only."""

from __future__ import annotations

from typing import Any

from litestar import Litestar

from libs.app import create_service_app
from libs.crypto import SecretBox
from libs.security import TokenVerifier
from services.auth.controllers import ROUTE_HANDLERS
from services.auth.deps import DEPENDENCIES
from services.auth.oidc import OidcProvider, StateStore
from services.auth.passwords import Passwords
from services.auth.service import AuthContext
from services.auth.settings import AuthSettings
from services.auth.signing import DatabaseKeySource, SigningKeys
from services.auth.throttle import LoginThrottle, Policy


def build_context(settings: AuthSettings) -> AuthContext:
    """Build the process-wide auth context (hasher, signing keys); the database comes at startup."""
    return AuthContext(
        settings=settings,
        passwords=Passwords(
            time_cost=settings.argon2_time_cost,
            memory_kib=settings.argon2_memory_kib,
            parallelism=settings.argon2_parallelism,
            concurrency=settings.hash_concurrency,
            queue_limit=settings.hash_queue_limit,
        ),
        keys=SigningKeys(
            SecretBox.from_settings(settings),
            access_token_ttl=settings.access_token_ttl,
            cache_seconds=settings.signing_key_cache_seconds,
        ),
    )


def create_app(settings: AuthSettings | None = None, **overrides: Any) -> Litestar:
    """Build the auth service; ``overrides`` replace the database, Redis or verifier in tests."""
    settings = settings or AuthSettings()
    ctx = build_context(settings)
    own_verifier = overrides.get("verifier") is None

    async def start(app: Litestar) -> None:
        ctx.database = app.state.db
        ctx.revocations = app.state.revocations
        ctx.throttle = LoginThrottle(
            app.state.redis,
            account=Policy(
                soft=settings.login_account_soft,
                hard=settings.login_account_hard,
                lockout=settings.login_account_lockout,
                lockout_max=settings.login_account_lockout_max,
                window=settings.login_window,
            ),
            address=Policy(
                soft=settings.login_address_soft,
                hard=settings.login_address_hard,
                lockout=settings.login_address_lockout,
                lockout_max=settings.login_address_lockout_max,
                window=settings.login_window,
            ),
        )
        app.state.oidc = OidcProvider(settings) if settings.oidc_enabled else None
        app.state.sso_states = StateStore(app.state.redis, settings.oidc_state_ttl)
        async with ctx.db.system() as session:
            await ctx.keys.ensure(session)
        if own_verifier:
            # The auth service trusts its own keys straight from its database, not over HTTP.
            app.state.verifier = TokenVerifier(
                DatabaseKeySource(ctx.db, ctx.keys),
                issuer=settings.jwt_issuer,
                audience=settings.jwt_audience,
                revocations=ctx.revocations,
            )

    return create_service_app(
        name="auth",
        title="Tidewater auth service",
        settings=settings,
        route_handlers=ROUTE_HANDLERS,
        dependencies=DEPENDENCIES,
        on_startup=[start],
        state={"auth": ctx},
        **overrides,
    )
