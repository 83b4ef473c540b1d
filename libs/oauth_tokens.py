"""OAuth 2.0 access tokens of email senders: the token endpoint, the refresh and the XOAUTH2 string.

:func:`access_token` answers a sender's current access token for SMTP and IMAP (XOAUTH2). When
less than :data:`REFRESH_MARGIN` of its life remains, it asks the provider for a new one with
the refresh token first, holding the ``sender_oauth`` row ``FOR UPDATE`` meanwhile, so one
process refreshes a sender at a time and the others then read the token it stored. A refresh
the provider refuses (``invalid_grant``: revoked, expired, password changed) marks the sender
``reconnect`` with the provider's reason and raises :class:`NeedsReconnect`; nothing asks the
provider again until a member connects the sender anew. A provider that does not answer raises
:class:`TokenUnavailable` and changes nothing. Tokens are sealed with ``libs.crypto.SecretBox``
bound to the sender (associated data), never logged.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import sqlalchemy as sa
import structlog
from sqlalchemy import Engine
from sqlalchemy.pool import NullPool

from libs.crypto import SecretBox, SecretBoxError
from libs.db.base import utcnow
from libs.db.models.brand import OAuthClient, OAuthProvider, OAuthStatus, SenderOAuth
from libs.db.session import system_session
from libs.settings import normalize_database_url

log = structlog.get_logger(__name__)

REFRESH_MARGIN = timedelta(minutes=5)
"""An access token with less life than this left is refreshed before use."""
TIMEOUT = 10.0

DEFAULTS: dict[OAuthProvider, tuple[str, str, str]] = {
    OAuthProvider.GOOGLE: (
        "https://accounts.google.com/o/oauth2/v2/auth",
        "https://oauth2.googleapis.com/token",
        "https://mail.google.com/",
    ),
    OAuthProvider.MICROSOFT: (
        "https://login.microsoftonline.com/common/oauth2/v2.0/authorize",
        "https://login.microsoftonline.com/common/oauth2/v2.0/token",
        "offline_access https://outlook.office.com/SMTP.Send https://outlook.office.com/IMAP.AccessAsUser.All",
    ),
}
"""Authorize URL, token URL and scope of the providers Tidewater knows (``generic`` has none)."""

CLIENTS: sa.Table = OAuthClient.__table__  # type: ignore[attr-defined]
TOKENS: sa.Table = SenderOAuth.__table__  # type: ignore[attr-defined]


class NeedsReconnect(Exception):
    """The sender's OAuth authorization no longer works; a member must connect it again."""


class TokenUnavailable(Exception):
    """The token endpoint did not answer usefully (network, 5xx): try again later."""


class TokenRefused(Exception):
    """The token endpoint refused the grant (``error`` as the provider says it)."""

    def __init__(self, error: str, description: str | None) -> None:
        super().__init__(f"{error}: {description}" if description else error)
        self.error = error
        self.description = description


@dataclass(frozen=True, slots=True)
class TokenGrant:
    """What a token endpoint answered."""

    access_token: str
    refresh_token: str | None
    expires_at: datetime


def seal(box: SecretBox, sender_id: uuid.UUID, kind: str, token: str) -> str:
    """``token`` sealed for ``sender_id`` (``kind``: access, refresh or verifier)."""
    return box.encrypt(token, associated_data=_bound(sender_id, kind))


def unseal(box: SecretBox, sender_id: uuid.UUID, kind: str, sealed: str) -> str:
    """A token :func:`seal` sealed."""
    return box.decrypt(sealed, associated_data=_bound(sender_id, kind))


def _bound(sender_id: uuid.UUID, kind: str) -> bytes:
    return f"sender-oauth:{sender_id}:{kind}".encode()


def xoauth2(user: str, token: str) -> str:
    """The SASL XOAUTH2 initial response (before base64): ``user=..^Aauth=Bearer ..^A^A``."""
    return f"user={user}\x01auth=Bearer {token}\x01\x01"


def smtp_xoauth2(user: str, token: str) -> Callable[..., str]:
    """The ``authobject`` of ``smtplib.SMTP.auth("XOAUTH2", ..., initial_response_ok=True)``.

    The token goes in the initial response; a refusal's 334 (a JSON error) is answered empty,
    after which the server says 535.
    """

    def respond(challenge: bytes | None = None) -> str:
        return "" if challenge else xoauth2(user, token)

    return respond


_engines: dict[str, Engine] = {}


def engine_for(url: str) -> Engine:
    """A small synchronous engine (no pool kept) for services that run on an async one."""
    engine = _engines.get(url)
    if engine is None:
        engine = _engines[url] = sa.create_engine(normalize_database_url(url), poolclass=NullPool)
    return engine


def request_token(
    token_url: str, client_id: str, client_secret: str, form: dict[str, str], *, timeout: float = TIMEOUT
) -> TokenGrant:
    """POST ``form`` to the token endpoint with the client's credentials (``client_secret_post``).

    Raises:
        TokenRefused: the provider answered an OAuth error (4xx).
        TokenUnavailable: no usable answer.
    """
    body = {**form, "client_id": client_id, "client_secret": client_secret}
    try:
        response = httpx.post(token_url, data=body, timeout=timeout, headers={"accept": "application/json"})
    except httpx.HTTPError as exc:
        raise TokenUnavailable(f"the token endpoint did not answer ({type(exc).__name__})") from exc
    payload = _json(response)
    if 400 <= response.status_code < 500:
        error = str(payload.get("error") or f"http_{response.status_code}")[:100]
        description = payload.get("error_description")
        raise TokenRefused(error, str(description)[:300] if description else None)
    access = payload.get("access_token")
    if response.status_code != 200 or not isinstance(access, str) or not access:
        raise TokenUnavailable(f"the token endpoint answered {response.status_code} without an access token")
    refresh = payload.get("refresh_token")
    expires_in = payload.get("expires_in")
    lifetime = int(expires_in) if isinstance(expires_in, int | str) and str(expires_in).isdigit() else 3600
    return TokenGrant(
        access, refresh if isinstance(refresh, str) and refresh else None, utcnow() + timedelta(seconds=lifetime)
    )


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        payload = response.json()
    except ValueError:
        return {}
    return payload if isinstance(payload, dict) else {}


_ROW = (
    sa.select(
        TOKENS.c.org_id,
        TOKENS.c.access_token_encrypted,
        TOKENS.c.refresh_token_encrypted,
        TOKENS.c.expires_at,
        TOKENS.c.status,
        TOKENS.c.reason,
        CLIENTS.c.client_id,
        CLIENTS.c.client_secret_encrypted,
        CLIENTS.c.token_url,
    )
    .select_from(
        TOKENS.outerjoin(CLIENTS, sa.and_(CLIENTS.c.org_id == TOKENS.c.org_id, CLIENTS.c.provider == TOKENS.c.provider))
    )
    .with_for_update(of=TOKENS)
)


def access_token(engine: Engine, box: SecretBox, sender_id: uuid.UUID, *, margin: timedelta = REFRESH_MARGIN) -> str:
    """The sender's access token, refreshed first when less than ``margin`` of its life remains.

    Raises:
        NeedsReconnect: the sender has no working OAuth authorization (reason in the message),
            or its stored tokens cannot be opened with this box's keys.
        TokenUnavailable: the refresh could not reach the provider; nothing changed.
    """
    try:
        return _access_token(engine, box, sender_id, margin)
    except SecretBoxError as exc:
        raise NeedsReconnect(
            "The stored OAuth tokens cannot be decrypted (was the secret key changed?); connect the sender again."
        ) from exc


def _access_token(engine: Engine, box: SecretBox, sender_id: uuid.UUID, margin: timedelta) -> str:
    with system_session(engine) as session:
        row = session.execute(_ROW.where(TOKENS.c.sender_id == sender_id)).first()
        if row is None:
            raise NeedsReconnect("The sender is not connected with OAuth.")
        if row.status == OAuthStatus.RECONNECT.value:
            raise NeedsReconnect(row.reason or "The sender's OAuth authorization must be connected again.")
        if row.expires_at - utcnow() > margin:
            return unseal(box, sender_id, "access", row.access_token_encrypted)
        refused = _refresh(session, box, sender_id, row)
        if isinstance(refused, TokenGrant):
            return refused.access_token
        _mark_reconnect(session, sender_id, refused)
    # Raised once the transaction that marked the sender committed.
    raise NeedsReconnect(refused)


def _refresh(session: Any, box: SecretBox, sender_id: uuid.UUID, row: Any) -> TokenGrant | str:
    """Store a refreshed access token and answer it, or answer why the sender must be connected again."""
    if not row.refresh_token_encrypted or row.client_id is None:
        return "The access token expired and there is no refresh token or OAuth client to renew it."
    refresh = unseal(box, sender_id, "refresh", row.refresh_token_encrypted)
    secret = box.decrypt(row.client_secret_encrypted, associated_data=client_bound(row.org_id))
    try:
        grant = request_token(
            row.token_url, row.client_id, secret, {"grant_type": "refresh_token", "refresh_token": refresh}
        )
    except TokenRefused as exc:
        log.warning("oauth_refresh_refused", sender_id=str(sender_id), error=exc.error)
        return f"The provider refused the refresh token ({exc}); connect the sender again."
    now = utcnow()
    values: dict[str, Any] = {
        "access_token_encrypted": seal(box, sender_id, "access", grant.access_token),
        "expires_at": grant.expires_at,
        "refreshed_at": now,
        "updated_at": now,
    }
    if grant.refresh_token:  # a provider that rotates refresh tokens sends a new one
        values["refresh_token_encrypted"] = seal(box, sender_id, "refresh", grant.refresh_token)
    session.execute(sa.update(TOKENS).where(TOKENS.c.sender_id == sender_id).values(**values))
    log.info("oauth_token_refreshed", sender_id=str(sender_id))
    return grant


def client_bound(org_id: uuid.UUID) -> bytes:
    """Associated data of an organization's sealed OAuth client secret."""
    return f"oauth-client:{org_id}".encode()


def _mark_reconnect(session: Any, sender_id: uuid.UUID, reason: str) -> None:
    session.execute(
        sa.update(TOKENS)
        .where(TOKENS.c.sender_id == sender_id)
        .values(status=OAuthStatus.RECONNECT.value, reason=reason[:500], updated_at=utcnow())
    )
