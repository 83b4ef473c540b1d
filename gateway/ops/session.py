"""Who may use the operator tooling: an operator bearer token, or the session cookie the login page sets.

The cookie is signed (itsdangerous, keyed by ``SDR_SECRET_KEY``) and timed; it is HttpOnly,
SameSite=Strict and Secure on HTTPS. The session it names is kept in Redis: ``/ops/logout``
deletes it, and a session is refused once its user is no longer an operator or has changed
their password since it began (checked on every request; Redis unreachable answers 503).
A browser session also carries a CSRF token: the HMAC
of the session id, sent in a readable ``_csrf_token`` cookie that rq-dashboard's own scripts
already echo as ``X-CSRFToken`` on every AJAX call. State changes made with the cookie need
that header and a same-origin ``Origin`` (or ``Referer``); a bearer token cannot be sent by
another site, so it needs neither.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import anyio.to_thread
import sqlalchemy as sa
import structlog
from itsdangerous import BadSignature, URLSafeTimedSerializer
from litestar.connection import ASGIConnection
from litestar.datastructures import Accept, State
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult
from litestar.response.redirect import ASGIRedirectResponse as ASGIRedirect
from litestar.types import Receive, Scope, Send
from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from libs.errors import Forbidden, Unauthorized, Unavailable
from libs.security import Principal, Role, bearer_token, now_ms

SESSION_COOKIE = "tw_ops"
CSRF_COOKIE = "_csrf_token"
CSRF_HEADER = "x-csrftoken"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LOGIN_PATH = "/ops/login"
LOGOUT_PATH = "/ops/logout"
MAX_NEXT = 2048
"""The longest ``next`` (the page to come back to after signing in) that is honoured."""
SESSION_RECORD = "tw:ops:session:"
"""Prefix of the Redis key holding a live operator session (the cookie names its id)."""

log = structlog.get_logger("gateway.ops")


@dataclass(frozen=True, slots=True)
class OpsSession:
    """A signed-in operator's browser session."""

    session_id: str
    user_id: uuid.UUID
    org_id: uuid.UUID
    issued_at: float


class SessionCodec:
    """Sign and check session cookies and their CSRF tokens with the gateway's secret."""

    def __init__(self, secret: str, *, max_age: int) -> None:
        self._serializer = URLSafeTimedSerializer(secret, salt="tidewater-ops-session")
        self._csrf_key = hashlib.sha256(b"tidewater-ops-csrf:" + secret.encode()).digest()
        self.max_age = max_age

    def issue(self, principal: Principal) -> tuple[str, OpsSession]:
        """Return a cookie value for ``principal`` (an operator) and the session it names."""
        session = OpsSession(
            session_id=secrets.token_urlsafe(18),
            user_id=principal.user_id,
            org_id=principal.org_id,
            issued_at=time.time(),
        )
        value = self._serializer.dumps(
            {"sid": session.session_id, "sub": str(session.user_id), "org": str(session.org_id)}
        )
        return value, session

    def read(self, value: str) -> OpsSession | None:
        """Return the session a cookie names, or None when it is forged, malformed or too old."""
        try:
            data, signed_at = self._serializer.loads(value, max_age=self.max_age, return_timestamp=True)
            return OpsSession(
                session_id=str(data["sid"]),
                user_id=uuid.UUID(data["sub"]),
                org_id=uuid.UUID(data["org"]),
                issued_at=signed_at.timestamp(),
            )
        except (BadSignature, KeyError, TypeError, ValueError):
            return None

    def csrf_token(self, session_id: str) -> str:
        """The CSRF token bound to a session."""
        return hmac.new(self._csrf_key, session_id.encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, session_id: str, presented: str | None) -> bool:
        """Whether ``presented`` is the CSRF token of ``session_id`` (constant-time)."""
        return bool(presented) and hmac.compare_digest(self.csrf_token(session_id), presented or "")


def _session_key(session_id: str) -> str:
    return SESSION_RECORD + hashlib.sha256(session_id.encode()).hexdigest()


async def _redis_call(state: State, call: Any, *args: Any) -> Any:
    redis: Redis = state.redis
    try:
        return await anyio.to_thread.run_sync(call, redis, *args, abandon_on_cancel=True)
    except (RedisError, OSError) as exc:
        log.warning("ops_sessions_unreachable", error=type(exc).__name__)
        raise Unavailable("Operator sessions cannot be checked right now; try again shortly.") from exc


async def open_session(state: State, session: OpsSession) -> None:
    """Record a new operator session for as long as its cookie may live.

    Raises:
        Unavailable: Redis did not take it (no cookie is handed out then).
    """
    codec: SessionCodec = state.ops_sessions
    record = json.dumps({"sub": str(session.user_id), "org": str(session.org_id), "iat_ms": now_ms()})
    await _redis_call(state, lambda r: r.set(_session_key(session.session_id), record, ex=codec.max_age))


async def end_session(state: State, session_id: str) -> None:
    """Forget an operator session: its cookie is refused from the next request on."""
    await _redis_call(state, lambda r: r.delete(_session_key(session_id)))


_OPERATOR_STATE = sa.text("SELECT operator, password_changed_at FROM users WHERE id = :id")


async def _operator_state(state: State, user_id: uuid.UUID) -> tuple[bool, float | None]:
    """Whether the user is an operator, and when (ms) their password last changed."""
    try:
        async with state.db.system() as db:
            row = (await (await db.connection()).execute(_OPERATOR_STATE, {"id": user_id})).first()
    except (SQLAlchemyError, OSError) as exc:
        log.warning("ops_sessions_unreadable", error=type(exc).__name__)
        raise Unavailable("Operator sessions cannot be checked right now; try again shortly.") from exc
    if row is None:
        return False, None
    changed = row[1].timestamp() * 1000 if row[1] is not None else None
    return bool(row[0]), changed


async def session_is_live(state: State, session: OpsSession) -> bool:
    """Whether the session is still open, its user still an operator, their password unchanged since.

    A session that fails is forgotten at once. Read from PostgreSQL, these outlast any access
    token's revocation record, as a session may.

    Raises:
        Unavailable: Redis or PostgreSQL cannot be read (refused rather than trusted).
    """
    raw = await _redis_call(state, lambda r: r.get(_session_key(session.session_id)))
    if raw is None:
        return False
    try:
        record = json.loads(raw)
        began = int(record["iat_ms"])
        same_user = record["sub"] == str(session.user_id)
    except (ValueError, KeyError, TypeError):
        return False
    if not same_user:
        return False
    operator, password_changed = await _operator_state(state, session.user_id)
    reason = None if operator else "not_an_operator"
    if reason is None and password_changed is not None and password_changed > began:
        reason = "password_changed"
    if reason is not None:
        await end_session(state, session.session_id)
        log.info("ops_session_revoked", operator_id=str(session.user_id), reason=reason)
        return False
    return True


def session_principal(session: OpsSession) -> Principal:
    """The principal a session acts for (sessions are only ever issued to operators)."""
    return Principal(
        user_id=session.user_id, org_id=session.org_id, role=Role.VIEWER, operator=True, token_id=session.session_id
    )


def _origin_of(value: str) -> str | None:
    parts = urlsplit(value)
    if not parts.scheme or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}".lower()


def own_origin(scope: dict[str, Any] | Any) -> str:
    """The origin the request was addressed to (scheme and Host header)."""
    host = ""
    for name, value in scope["headers"]:
        if name == b"host":
            host = value.decode("latin-1")
            break
    return f"{scope.get('scheme', 'http')}://{host}".lower()


def same_origin(scope: dict[str, Any] | Any) -> bool:
    """Whether the request's ``Origin`` (or, without one, its ``Referer``) is the gateway itself."""
    origin = referer = None
    for name, value in scope["headers"]:
        if name == b"origin":
            origin = value.decode("latin-1")
        elif name == b"referer":
            referer = value.decode("latin-1")
    claimed = origin if origin is not None else referer
    if not claimed or claimed == "null":
        return False
    return _origin_of(claimed) == own_origin(scope)


def check_csrf(connection: ASGIConnection[Any, Any, Any, Any]) -> None:
    """Refuse a state change made with the session cookie unless it is same-origin and carries the token."""
    if connection.scope.get("method", "GET") in SAFE_METHODS:
        return
    session: OpsSession | None = (
        connection.scope.get("auth") if isinstance(connection.scope.get("auth"), OpsSession) else None
    )
    if session is None:
        return  # a bearer token: another site cannot attach it
    codec: SessionCodec = connection.app.state.ops_sessions
    if not same_origin(connection.scope):
        raise Forbidden("Cross-site request refused.")
    if not codec.csrf_ok(session.session_id, connection.headers.get(CSRF_HEADER)):
        raise Forbidden("A valid CSRF token is required.")


async def authenticate(connection: ASGIConnection[Any, Any, Any, Any]) -> AuthenticationResult:
    """Return who calls: a bearer token (access token or API key) first, else the session cookie."""
    state = connection.app.state
    token = bearer_token(connection.headers.get("authorization"))
    if token is not None:
        proxy = state.proxy
        if token.startswith("twk_"):
            request_id = connection.scope.get("state", {}).get("request_id", "")
            token, principal = await proxy.api_keys.verified(token, proxy.verifier, request_id=request_id)
        else:
            principal = await proxy.verifier.verify(token)
        return AuthenticationResult(user=principal, auth=token)
    raw = connection.cookies.get(SESSION_COOKIE)
    if raw:
        session = state.ops_sessions.read(raw)
        if session is not None and await session_is_live(state, session):
            return AuthenticationResult(user=session_principal(session), auth=session)
    raise Unauthorized("Operator credentials are required.")


def _header(scope: Any, wanted: bytes) -> str | None:
    for name, value in scope["headers"]:
        if name == wanted:
            return str(value.decode("latin-1"))
    return None


def _requested_path(scope: Any) -> str:
    # The path the client sent: below a mount, Litestar has already cut ``path`` to the mount's rest.
    raw = scope.get("raw_path") or str(scope.get("path", "")).encode()
    return str(raw.split(b"?", 1)[0].decode("latin-1"))


def is_page_request(scope: Any) -> bool:
    """Whether a browser navigates to an operator page: a GET of ``/ops/...`` preferring HTML, with no token.

    API clients (``/api/ops/...``, ``Accept: application/json``, the dashboard's own AJAX calls,
    anything with an ``Authorization`` header) are answered with problems instead.
    """
    if scope.get("type") != "http" or scope.get("method") not in ("GET", "HEAD"):
        return False
    if not _requested_path(scope).startswith("/ops/") or _header(scope, b"authorization") is not None:
        return False
    header = _header(scope, b"accept") or ""
    # Named explicitly: ``*/*`` alone is what curl and scripts send.
    return "text/html" in header.lower() and Accept(header).best_match(["text/html", "application/json"]) == "text/html"


def safe_next(value: str | None) -> str | None:
    """``value`` when it is a path of this gateway's operator pages (never another site, nor sign-in itself)."""
    if not value or len(value) > MAX_NEXT or not value.startswith("/ops/"):
        return None
    if "\\" in value or any(ord(c) < 0x21 or ord(c) == 0x7F for c in value):
        return None  # browsers read a backslash as a slash; control characters and spaces never belong
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or not parts.path.startswith("/ops/"):
        return None
    if parts.path.rstrip("/") in (LOGIN_PATH, LOGOUT_PATH):
        return None
    return value


def sign_in_location(scope: Any) -> str:
    """Where a browser without a session is sent: the sign-in page, coming back to the page it asked for."""
    target = _requested_path(scope)
    if scope.get("query_string"):
        target += "?" + scope["query_string"].decode("latin-1")
    back = safe_next(target)
    return LOGIN_PATH + (f"?{urlencode({'next': back})}" if back else "")


class OperatorAuthMiddleware(AbstractAuthenticationMiddleware):
    """Authenticate by bearer token (access token or API key) or by the operator session cookie.

    A browser opening an operator page without a session is redirected (303) to the sign-in
    page with ``next`` naming the page; every other caller gets the 401 problem.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Redirect page requests that carry no credentials to the sign-in page; otherwise authenticate."""
        if not is_page_request(scope):
            await super().__call__(scope, receive, send)
            return
        try:
            result = await self.authenticate_request(ASGIConnection(scope))
        except Unauthorized:
            redirect = ASGIRedirect(sign_in_location(scope), status_code=303, headers={"Cache-Control": "no-store"})
            await redirect(scope, receive, send)
            return
        scope["user"] = result.user
        scope["auth"] = result.auth
        await self.app(scope, receive, send)

    async def authenticate_request(self, connection: ASGIConnection[Any, Any, Any, Any]) -> AuthenticationResult:
        """Return the principal; the guards decide what it may do."""
        return await authenticate(connection)


def operator_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Guard: only platform operators pass, and cookie-borne state changes must pass the CSRF checks."""
    principal = connection.user
    if not isinstance(principal, Principal):
        raise Unauthorized("Operator credentials are required.")
    if not principal.operator:
        raise Forbidden("Only operators may use this.")
    check_csrf(connection)
