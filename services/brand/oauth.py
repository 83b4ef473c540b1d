"""Email senders connected with OAuth 2.0 (Google Workspace, Microsoft 365, any OAuth server).

``PUT /api/credentials/oauth/{provider}`` stores the organization's OAuth client for a provider
(``google``, ``microsoft`` or ``generic``; the secret sealed, the URLs defaulting to the
provider's). ``POST /api/brands/{id}/senders/{sid}/oauth/start`` answers the URL to open in a
browser: an authorization-code request with PKCE (S256) whose ``state`` and verifier stay here,
bound to the organization and the sender, for ten minutes and one use. The provider sends the
browser back to ``GET /hooks/oauth/callback``, which takes the state (deleted on first use,
whatever follows), trades the code and the verifier for tokens, stores them sealed on the
sender, sets its ``auth_mode`` to ``oauth2`` and answers a small HTML page (``DELETE .../oauth``
forgets the tokens and sets it back to ``password``). Any failure
stores nothing and answers a problem naming the parameter: an unknown, used or expired
``state``, the provider's ``error`` (400), a code the token endpoint refused (502).
"""

from __future__ import annotations

import base64
import hashlib
import html
import secrets
import uuid
from datetime import datetime, timedelta
from typing import Annotated
from urllib.parse import urlencode, urlsplit

import anyio.to_thread
import sqlalchemy as sa
import structlog
from litestar import Controller, Response, delete, get, post, put
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from libs.crypto import SecretBox, SecretBoxError, last4
from libs.db.base import utcnow
from libs.db.models.brand import (
    AuthMode,
    Mailbox,
    MailboxState,
    OAuthAuthorization,
    OAuthClient,
    OAuthProvider,
    OAuthStatus,
    Sender,
    SenderKind,
)
from libs.db.session import Database
from libs.errors import AppError, Invalid, NotFound
from libs.oauth_tokens import (
    CLIENTS,
    DEFAULTS,
    TOKENS,
    TokenRefused,
    TokenUnavailable,
    client_bound,
    request_token,
    seal,
    unseal,
)
from libs.openapi import problems
from libs.scopes import Area, scope_area
from libs.security import PUBLIC, Principal, Role, requires
from libs.settings import Environment
from services.brand.deps import provide_brand_service
from services.brand.service import BrandService

log = structlog.get_logger(__name__)

CALLBACK_PATH = "/hooks/oauth/callback"
STATE_TTL = timedelta(minutes=10)
AUTHORIZATIONS: sa.Table = OAuthAuthorization.__table__  # type: ignore[attr-defined]
SENDERS: sa.Table = Sender.__table__  # type: ignore[attr-defined]
MAILBOXES: sa.Table = Mailbox.__table__  # type: ignore[attr-defined]


class OAuthSettings(BaseSettings):
    """Where the provider sends the browser back: ``SDR_PUBLIC_BASE_URL`` (the gateway's public URL)."""

    model_config = SettingsConfigDict(env_prefix="SDR_", env_file=".env", extra="ignore")

    public_base_url: str = Field(
        default="http://127.0.0.1:8000", description="Public URL of the gateway; the OAuth redirect URI is built on it."
    )
    oauth_timeout: float = Field(default=10.0, gt=0, le=60, description="Seconds a call to a token endpoint may take.")


# schemas ---------------------------------------------------------------------------------------


class OAuthClientSet(BaseModel):
    """An organization's OAuth client at a provider; the URLs and scope default to the provider's."""

    model_config = ConfigDict(extra="forbid")

    client_id: str = Field(min_length=1, max_length=500)
    client_secret: str = Field(min_length=1, max_length=2000)
    authorize_url: str | None = Field(default=None, max_length=2048)
    token_url: str | None = Field(default=None, max_length=2048)
    scope: str | None = Field(default=None, min_length=1, max_length=1000)


class SecretShown(BaseModel):
    """That a secret is stored, and its last four characters."""

    set: bool
    last4: str | None = None


class OAuthClientRead(BaseModel):
    """An OAuth client as the API shows it: the secret only as ``set``/``last4``."""

    provider: OAuthProvider
    client_id: str
    client_secret: SecretShown
    authorize_url: str
    token_url: str
    scope: str
    redirect_uri: str = Field(description="Register this redirect URI with the provider.")
    updated_at: datetime


class OAuthStart(BaseModel):
    """Which provider's OAuth client the sender connects with."""

    model_config = ConfigDict(extra="forbid")

    provider: OAuthProvider


class OAuthStarted(BaseModel):
    """Open ``authorize_url`` in a browser before ``expires_at``; the provider sends it back to Tidewater."""

    authorize_url: str
    expires_at: datetime


# helpers -----------------------------------------------------------------------------------------


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _challenge(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def _redirect_uri(state: State) -> str:
    settings: OAuthSettings = state.oauth_settings
    return settings.public_base_url.rstrip("/") + CALLBACK_PATH


def _check_url(field: str, url: str, *, production: bool) -> str:
    parts = urlsplit(url)
    allowed = ("https",) if production else ("https", "http")
    if parts.scheme not in allowed or not parts.hostname:
        need = "an https URL" if production else "an http(s) URL"
        raise Invalid(f"`{field}` must be {need}.", errors=[{"field": field, "message": f"not {need}"}])
    return url


def _client_read(row: OAuthClient, redirect_uri: str) -> OAuthClientRead:
    return OAuthClientRead(
        provider=OAuthProvider(row.provider),
        client_id=row.client_id,
        client_secret=SecretShown(set=True, last4=row.client_secret_last4 or None),
        authorize_url=row.authorize_url,
        token_url=row.token_url,
        scope=row.scope,
        redirect_uri=redirect_uri,
        updated_at=row.updated_at,
    )


async def _client(session: AsyncSession, org_id: uuid.UUID, provider: OAuthProvider) -> OAuthClient | None:
    query = select(OAuthClient).where(OAuthClient.org_id == org_id, OAuthClient.provider == provider.value)
    return (await session.exec(query)).first()


def _page(title: str, message: str) -> Response[str]:
    body = (
        "<!doctype html><html><head><meta charset='utf-8'><title>Tidewater</title></head>"
        f"<body><h1>{html.escape(title)}</h1><p>{html.escape(message)}</p></body></html>"
    )
    return Response(
        body,
        media_type="text/html",
        headers={"Cache-Control": "no-store", "Content-Security-Policy": "default-src 'none'"},
    )


# controllers -----------------------------------------------------------------------------------------


class OAuthClientController(Controller):
    """The organization's OAuth clients, one per provider."""

    path = "/api/credentials/oauth"
    tags = ["credentials"]
    guards = [requires(Role.VIEWER)]
    opt = scope_area(Area.BRANDS)

    @put(
        "/{provider:str}",
        operation_id="SetOAuthClient",
        guards=[requires(Role.ADMIN)],
        responses=problems(422, s422="An unknown provider, or a URL that is not http(s) (https in production)."),
        status_code=200,
    )
    async def set_client(
        self,
        provider: FromPath[str],
        data: JSONBody[OAuthClientSet],
        session: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
        box: NamedDependency[SecretBox],
        state: State,
    ) -> OAuthClientRead:
        """Store the OAuth client (its secret sealed); a generic provider needs both URLs and a scope."""
        kind = _provider(provider)
        production = state.settings.env is Environment.PRODUCTION
        defaults = DEFAULTS.get(kind)
        authorize_url = data.authorize_url or (defaults[0] if defaults else None)
        token_url = data.token_url or (defaults[1] if defaults else None)
        scope = data.scope or (defaults[2] if defaults else None)
        missing = [
            {"field": name, "message": "required for a generic provider"}
            for name, value in (("authorize_url", authorize_url), ("token_url", token_url), ("scope", scope))
            if not value
        ]
        if missing:
            raise Invalid("A generic provider needs its URLs and scope.", errors=missing)
        assert authorize_url
        assert token_url
        assert scope
        values = {
            "client_id": data.client_id,
            "client_secret_encrypted": box.encrypt(data.client_secret, associated_data=client_bound(principal.org_id)),
            "client_secret_last4": last4(data.client_secret),
            "authorize_url": _check_url("authorize_url", authorize_url, production=production),
            "token_url": _check_url("token_url", token_url, production=production),
            "scope": scope,
            "updated_at": utcnow(),
        }
        stmt = pg_insert(CLIENTS).values(
            id=uuid.uuid4(), org_id=principal.org_id, provider=kind.value, created_at=utcnow(), **values
        )
        await session.exec(stmt.on_conflict_do_update(index_elements=["org_id", "provider"], set_=values))
        row = await _client(session, principal.org_id, kind)
        assert row is not None
        await session.refresh(row)
        log.info("oauth_client_set", provider=kind.value)
        return _client_read(row, _redirect_uri(state))

    @get("/{provider:str}", operation_id="GetOAuthClient", responses=problems(404))
    async def get_client(
        self,
        provider: FromPath[str],
        session: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
        state: State,
    ) -> OAuthClientRead:
        """The OAuth client of a provider, without its secret."""
        row = await _client(session, principal.org_id, _provider(provider))
        if row is None:
            raise OAuthClientNotFound("No OAuth client is stored for this provider.")
        return _client_read(row, _redirect_uri(state))


def _provider(value: str) -> OAuthProvider:
    try:
        return OAuthProvider(value)
    except ValueError:
        raise Invalid(
            "Unknown OAuth provider.",
            errors=[{"field": "provider", "message": "one of google, microsoft, generic"}],
        ) from None


class AuthorizationRefused(AppError):
    """The authorization cannot finish: its state is unknown, used or expired, or the provider refused."""

    status = 400
    title = "Authorization not finished"


class TokenExchangeFailed(AppError):
    """The provider's token endpoint refused the code or did not answer."""

    status = 502
    title = "Token exchange failed"


def _refused(field: str, message: str) -> AuthorizationRefused:
    return AuthorizationRefused(message, errors=[{"field": field, "message": message}])


class OAuthClientNotFound(NotFound):
    """No OAuth client of that provider is stored."""


class SenderOAuthController(Controller):
    """Connecting an email sender with OAuth 2.0."""

    path = "/api/brands/{brand_id:uuid}/senders/{sender_id:uuid}/oauth"
    tags = ["senders"]
    guards = [requires(Role.MEMBER)]
    opt = scope_area(Area.BRANDS)
    dependencies = {"brands": Provide(provide_brand_service)}

    @post(
        "/start",
        operation_id="StartSenderOAuth",
        status_code=201,
        responses=problems(
            422, s422="Not an email sender, or no OAuth client is stored for `provider` (PUT /api/credentials/oauth)."
        ),
    )
    async def start(
        self,
        brand_id: FromPath[uuid.UUID],
        sender_id: FromPath[uuid.UUID],
        data: JSONBody[OAuthStart],
        brands: NamedDependency[BrandService],
        session: NamedDependency[AsyncSession],
        box: NamedDependency[SecretBox],
        state: State,
    ) -> OAuthStarted:
        """Begin an authorization-code request with PKCE for the sender; answer the URL to open."""
        sender = await brands.sender(brand_id, sender_id)
        if sender.kind != SenderKind.EMAIL.value:
            raise Invalid("Only email senders connect with OAuth.", errors=[{"field": "kind", "message": "not email"}])
        client = await _client(session, brands.org_id, data.provider)
        if client is None:
            raise Invalid(
                "No OAuth client is stored for this provider.",
                errors=[{"field": "provider", "message": "store one with PUT /api/credentials/oauth/{provider}"}],
            )
        now = utcnow()
        key, verifier = secrets.token_urlsafe(32), secrets.token_urlsafe(64)
        redirect_uri = _redirect_uri(state)
        expires_at = now + STATE_TTL
        await session.exec(sa.delete(AUTHORIZATIONS).where(AUTHORIZATIONS.c.expires_at < now))
        await session.exec(
            sa.insert(AUTHORIZATIONS).values(
                id=uuid.uuid4(),
                org_id=brands.org_id,
                sender_id=sender.id,
                provider=data.provider.value,
                state_hash=_digest(key),
                verifier_encrypted=seal(box, sender.id, "verifier", verifier),
                redirect_uri=redirect_uri,
                expires_at=expires_at,
                created_at=now,
            )
        )
        query = {
            "response_type": "code",
            "client_id": client.client_id,
            "redirect_uri": redirect_uri,
            "scope": client.scope,
            "state": key,
            "code_challenge": _challenge(verifier),
            "code_challenge_method": "S256",
            # Google answers a refresh token only for offline access, and again only with consent.
            "access_type": "offline",
            "prompt": "consent",
        }
        if sender.from_address:
            query["login_hint"] = sender.from_address
        separator = "&" if "?" in client.authorize_url else "?"
        log.info("oauth_started", sender_id=str(sender.id), provider=data.provider.value)
        return OAuthStarted(authorize_url=client.authorize_url + separator + urlencode(query), expires_at=expires_at)

    @delete("/", operation_id="DisconnectSenderOAuth", status_code=204)
    async def disconnect(
        self,
        brand_id: FromPath[uuid.UUID],
        sender_id: FromPath[uuid.UUID],
        brands: NamedDependency[BrandService],
        session: NamedDependency[AsyncSession],
    ) -> None:
        """Forget the sender's OAuth tokens; it logs in with its password again (``auth_mode`` password)."""
        sender = await brands.sender(brand_id, sender_id)
        await session.exec(sa.delete(TOKENS).where(TOKENS.c.sender_id == sender.id))
        await session.exec(sa.delete(AUTHORIZATIONS).where(AUTHORIZATIONS.c.sender_id == sender.id))
        await session.exec(
            sa.update(SENDERS)
            .where(SENDERS.c.id == sender.id, SENDERS.c.auth_mode == AuthMode.OAUTH2.value)
            .values(auth_mode=AuthMode.PASSWORD.value, version=SENDERS.c.version + 1, updated_at=utcnow())
        )
        log.info("oauth_disconnected", sender_id=str(sender.id))


class OAuthCallbackController(Controller):
    """Where the provider sends the browser back (public: the state is the credential)."""

    path = "/hooks/oauth"
    tags = ["senders"]

    @get(
        "/callback",
        opt=PUBLIC,
        operation_id="FinishSenderOAuth",
        media_type="text/html",
        responses=problems(
            400,
            502,
            s400="The `state` is unknown, used or expired, or the provider sent `error` instead of a `code`.",
            s502="The provider's token endpoint refused the `code` or did not answer.",
        ),
    )
    async def callback(
        self,
        state: State,
        code: FromQuery[str | None] = None,
        error: FromQuery[str | None] = None,
        state_: Annotated[str | None, QueryParameter(name="state")] = None,
    ) -> Response[str]:
        """Trade the code for tokens and store them on the sender; answer a small HTML page."""
        db: Database = state.db
        box: SecretBox = state.box
        if not state_ or len(state_) > 200:
            raise _refused("state", "This link is not a Tidewater authorization.")
        async with db.system() as session:
            taken = (
                await session.exec(
                    sa.delete(AUTHORIZATIONS)
                    .where(AUTHORIZATIONS.c.state_hash == _digest(state_))
                    .returning(*AUTHORIZATIONS.c)
                )
            ).first()
        if taken is None:
            raise _refused("state", "This authorization is unknown or was already used; start again.")
        if taken.expires_at <= utcnow():
            raise _refused("state", "This authorization expired (ten minutes); start again.")
        if error is not None or not code or len(code) > 4096:
            log.warning("oauth_refused_at_provider", sender_id=str(taken.sender_id), error=(error or "no_code")[:100])
            reason = (error or "no code")[:100]
            raise _refused("error" if error else "code", f"The provider did not authorize the mailbox ({reason}).")
        async with db.system() as session:
            query = select(OAuthClient).where(
                OAuthClient.org_id == taken.org_id, OAuthClient.provider == taken.provider
            )
            client = (await session.exec(query)).first()
        if client is None:
            raise _refused("state", "The organization's OAuth client was removed; start again.")
        try:
            secret = box.decrypt(client.client_secret_encrypted, associated_data=client_bound(taken.org_id))
            verifier = unseal(box, taken.sender_id, "verifier", taken.verifier_encrypted)
        except SecretBoxError as exc:
            raise _refused(
                "state", "The stored OAuth client cannot be decrypted; store it again, then start again."
            ) from exc
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": taken.redirect_uri,
            "code_verifier": verifier,
        }
        settings: OAuthSettings = state.oauth_settings
        try:
            grant = await anyio.to_thread.run_sync(
                lambda: request_token(client.token_url, client.client_id, secret, form, timeout=settings.oauth_timeout)
            )
        except (TokenRefused, TokenUnavailable) as exc:
            log.warning("oauth_exchange_failed", sender_id=str(taken.sender_id), error=type(exc).__name__)
            raise TokenExchangeFailed(
                f"The provider refused the authorization ({exc}).", errors=[{"field": "code", "message": str(exc)}]
            ) from exc
        now = utcnow()
        tokens = {
            "provider": taken.provider,
            "access_token_encrypted": seal(box, taken.sender_id, "access", grant.access_token),
            "refresh_token_encrypted": (
                seal(box, taken.sender_id, "refresh", grant.refresh_token) if grant.refresh_token else None
            ),
            "expires_at": grant.expires_at,
            "status": OAuthStatus.CONNECTED.value,
            "reason": None,
            "connected_at": now,
            "refreshed_at": None,
            "updated_at": now,
        }
        async with db.system() as session:
            updated = await session.exec(
                sa.update(SENDERS)
                .where(SENDERS.c.id == taken.sender_id, SENDERS.c.org_id == taken.org_id)
                .values(auth_mode=AuthMode.OAUTH2.value, version=SENDERS.c.version + 1, updated_at=now)
            )
            if updated.rowcount == 0:
                raise _refused("state", "The sender was deleted meanwhile.")
            insert = pg_insert(TOKENS).values(sender_id=taken.sender_id, org_id=taken.org_id, **tokens)
            await session.exec(insert.on_conflict_do_update(index_elements=["sender_id"], set_=tokens))
            # A mailbox paused for a refused login (or refresh) is read again with the new authorization.
            await session.exec(
                sa.update(MAILBOXES)
                .where(MAILBOXES.c.sender_id == taken.sender_id, MAILBOXES.c.state == MailboxState.PAUSED.value)
                .values(state=MailboxState.ACTIVE.value, paused_reason=None, paused_at=None, updated_at=now)
            )
        log.info("oauth_connected", sender_id=str(taken.sender_id), provider=taken.provider)
        return _page("Connected", "The mailbox is connected to Tidewater. You can close this page.")


CONTROLLERS = [OAuthClientController, SenderOAuthController, OAuthCallbackController]
