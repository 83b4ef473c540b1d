"""Token verification and the principal every handler acts for.

The auth service signs access tokens with an Ed25519 key named by ``kid``; everyone else
verifies them against the JWKS it publishes. Nothing here trusts a header it did not verify.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import httpx
import jwt
import structlog
from jwt import PyJWK
from litestar import Request
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult
from litestar.middleware._utils import should_bypass_middleware
from litestar.types import Receive, Scope, Send
from redis.asyncio import BlockingConnectionPool
from redis.asyncio import Redis as AsyncRedis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from libs.errors import AppError, Forbidden, Unauthorized, Unavailable, app_error_handler
from libs.scopes import KNOWN_SCOPES, Requirement, grants, required_scope

ALGORITHM = "EdDSA"
REQUIRED_CLAIMS = ("iss", "aud", "sub", "org", "role", "exp", "iat", "jti")
_FORBIDDEN_HEADERS = ("jku", "jwk", "x5u", "x5c")
LEEWAY_SECONDS = 30
ISSUED_MS_CLAIM = "iat_ms"
"""Issue time in milliseconds: revocation epochs are finer than ``iat``'s whole seconds."""

log = structlog.get_logger(__name__)


class Role(StrEnum):
    """A member's role in an organization, weakest first."""

    VIEWER = "viewer"
    MEMBER = "member"
    ADMIN = "admin"
    OWNER = "owner"

    @property
    def rank(self) -> int:
        """Position in the order viewer < member < admin < owner."""
        return list(Role).index(self)

    def at_least(self, other: Role) -> bool:
        """Whether this role includes everything ``other`` may do."""
        return self.rank >= other.rank


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request acts for, taken from a verified token only."""

    user_id: uuid.UUID
    org_id: uuid.UUID
    role: Role
    scopes: frozenset[str] = field(default_factory=frozenset)
    operator: bool = False
    token_id: str = ""
    api_key_id: uuid.UUID | None = None

    def require(self, role: Role) -> None:
        """Raise :class:`Forbidden` unless the principal's role is at least ``role``."""
        if not self.role.at_least(role):
            raise Forbidden(f"This action needs the {role.value} role or higher.")

    @property
    def scoped(self) -> bool:
        """Whether the token is limited by scopes: an API key's always is, even with none left."""
        return bool(self.scopes) or self.api_key_id is not None

    def require_scope(self, scope: str) -> None:
        """Raise :class:`MissingScope` unless a scoped token holds ``scope`` (people's tokens pass).

        A scope outside the closed set (``members:write``: people manage people) is held only
        through ``*``, and the route's own guards then decide.
        """
        if not self.scoped or grants(self.scopes, scope):
            return
        if scope not in KNOWN_SCOPES:
            raise Forbidden(PEOPLE_ONLY_DETAIL)
        raise MissingScope(f"This action needs the {scope} scope.", required_scope=scope)

    def require_route(self, opt: Mapping[str, Any], method: str) -> None:
        """Raise unless this token may call ``method`` on a route with ``opt`` (see :mod:`libs.scopes`)."""
        if not self.scoped:
            return
        needed = required_scope(opt, method)
        if needed is Requirement.PERSON:
            raise Forbidden(PEOPLE_ONLY_DETAIL)
        if needed is not Requirement.NONE:
            self.require_scope(needed)


PEOPLE_ONLY_DETAIL = "API keys may not do this; sign in as a person."


class MissingScope(Forbidden):
    """The API key's token lacks the scope the route needs (``required_scope`` names it)."""


class KeySource:
    """Where verification keys come from: a fixed JWKS, or a URL fetched and cached."""

    def __init__(
        self,
        *,
        jwks: Mapping[str, Any] | None = None,
        url: str | None = None,
        ttl: float = 300.0,
        client: httpx.AsyncClient | None = None,
        refresh_floor: float = 10.0,
    ) -> None:
        if (jwks is None) == (url is None):
            raise ValueError("give exactly one of jwks or url")
        self._url = url
        self._ttl = ttl
        self._client = client
        self._keys: dict[str, PyJWK] = self._parse(jwks) if jwks is not None else {}
        self._fetched_at = time.monotonic() if jwks is not None else 0.0
        self._refresh_floor = refresh_floor
        self._lock = asyncio.Lock()

    @staticmethod
    def _parse(jwks: Mapping[str, Any]) -> dict[str, PyJWK]:
        keys: dict[str, PyJWK] = {}
        for entry in jwks.get("keys", []):
            if entry.get("kty") == "OKP" and entry.get("kid"):
                keys[entry["kid"]] = PyJWK.from_dict(dict(entry), algorithm=ALGORITHM)
        return keys

    async def get(self, kid: str) -> PyJWK | None:
        """Return the key ``kid``, refreshing the cache when stale or when the kid is new."""
        key = self._keys.get(kid)
        age = time.monotonic() - self._fetched_at
        if self._url and ((key is None and age > self._refresh_floor) or age > self._ttl):
            async with self._lock:
                if time.monotonic() - self._fetched_at > self._refresh_floor:
                    await self._refresh()
            key = self._keys.get(kid)
        return key

    async def _refresh(self) -> None:
        assert self._url is not None
        client = self._client or httpx.AsyncClient(timeout=5.0)
        try:
            response = await client.get(self._url)
            response.raise_for_status()
            self._keys = self._parse(response.json())
        except (httpx.HTTPError, ValueError):
            pass  # keep serving the keys we have; unknown kids stay unknown
        finally:
            self._fetched_at = time.monotonic()
            if self._client is None:
                await client.aclose()


REVOCATION_PREFIX = "tw:revoked:"
REVOCATION_TIMEOUT = 1.0
"""Seconds a revocation look-up may take before the request is refused (503)."""
REVOCATION_CONNECTIONS = 16
"""Redis connections one process's revocation checks share (each check is one MGET)."""

# KEYS: records to raise. ARGV: epoch in ms, TTL in seconds. A record only ever moves forward.
_RAISE_EPOCH = """
for _, key in ipairs(KEYS) do
  local current = tonumber(redis.call('GET', key) or '0')
  if tonumber(ARGV[1]) > current then
    redis.call('SET', key, ARGV[1], 'EX', ARGV[2])
  end
end
return #KEYS
"""


def session_record(session_id: str) -> str:
    """Revocation record of one session (the ``sid`` claim: a refresh-token family)."""
    return f"{REVOCATION_PREFIX}sid:{session_id}"


def user_record(user_id: uuid.UUID | str) -> str:
    """Revocation record of every session of a person (API-key tokens are not sessions)."""
    return f"{REVOCATION_PREFIX}user:{user_id}"


def membership_record(org_id: uuid.UUID | str, user_id: uuid.UUID | str) -> str:
    """Revocation record of every token of a person in one organization, API-key tokens included."""
    return f"{REVOCATION_PREFIX}member:{org_id}:{user_id}"


def api_key_record(api_key_id: uuid.UUID | str) -> str:
    """Revocation record of the tokens an API key was exchanged for."""
    return f"{REVOCATION_PREFIX}key:{api_key_id}"


def issued_at_ms(claims: Mapping[str, Any]) -> int:
    """When a token was issued, in ms: the ``iat_ms`` claim, else the start of its ``iat`` second."""
    precise = claims.get(ISSUED_MS_CLAIM)
    if isinstance(precise, int) and not isinstance(precise, bool) and abs(precise // 1000 - int(claims["iat"])) <= 1:
        return precise
    return int(claims["iat"]) * 1000


def now_ms() -> int:
    """The current time in milliseconds (the unit of issue times and revocation epochs)."""
    return time.time_ns() // 1_000_000


class RevocationList:
    """Revocation records in Redis: "the tokens of X issued before T are void".

    X is a session (``sid``), a person (every session, on a password change), a membership
    (every token of a person in one organization, on a demotion or removal) or an API key
    (``akid``). A verifier reads the records a token names in one ``MGET``; a record lives as
    long as the longest-lived token it may void. Redis being unreachable refuses the request
    (503): a revocation must not lapse because its record cannot be read.
    """

    def __init__(self, url: str, *, timeout: float = REVOCATION_TIMEOUT) -> None:
        self.url = url
        self.timeout = timeout
        self._redis: AsyncRedis | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._script: Any = None

    def _client(self) -> AsyncRedis:
        loop = asyncio.get_running_loop()
        if self._redis is None or self._loop is not loop:  # a client belongs to the loop that opened it
            # A bounded pool: a burst of requests (200 stream subscribers connecting at once) shares a
            # few connections instead of each opening its own and timing out on the connect.
            pool = BlockingConnectionPool.from_url(
                self.url,
                max_connections=REVOCATION_CONNECTIONS,
                timeout=self.timeout * 5,
                socket_timeout=self.timeout,
                socket_connect_timeout=self.timeout,
                retry=Retry(NoBackoff(), 1),  # once more on a stale connection, then give up
            )
            self._redis = AsyncRedis(connection_pool=pool)
            self._script = self._redis.register_script(_RAISE_EPOCH)
            self._loop = loop
        return self._redis

    @staticmethod
    def records_of(claims: Mapping[str, Any]) -> list[str]:
        """The records that may void a token with these claims."""
        records = [membership_record(claims["org"], claims["sub"])]
        if claims.get("akid"):
            records.append(api_key_record(claims["akid"]))
        else:
            records.append(user_record(claims["sub"]))
        if claims.get("sid"):
            records.append(session_record(str(claims["sid"])))
        return records

    async def check(self, claims: Mapping[str, Any]) -> None:
        """Raise :class:`Unauthorized` when a record voids the token, :class:`Unavailable` when Redis fails."""
        issued = issued_at_ms(claims)
        records = self.records_of(claims)
        try:
            epochs = await self._client().mget(records)
        except (RedisError, OSError) as exc:
            log.warning("revocations_unreadable", error=type(exc).__name__)
            raise Unavailable("Token revocations cannot be checked right now; try again shortly.") from exc
        for epoch in epochs:
            if epoch is not None and issued < int(epoch):
                raise Unauthorized("The access token has been revoked.")

    async def revoke(self, records: Sequence[str], *, ttl: int, at_ms: int | None = None) -> int:
        """Void every token of ``records`` issued before ``at_ms`` (now); return the epoch written.

        ``ttl`` is the longest an access token lives (plus leeway): after it, nothing is left to void.

        Raises:
            Unavailable: Redis did not take the records (the caller's change must not commit).
        """
        epoch = now_ms() if at_ms is None else at_ms
        if not records:
            return epoch
        try:
            self._client()
            await self._script(keys=list(records), args=[epoch, max(1, int(ttl))])
        except (RedisError, OSError) as exc:
            log.warning("revocations_unwritable", error=type(exc).__name__)
            raise Unavailable("The revocation cannot be recorded right now; try again shortly.") from exc
        return epoch

    async def aclose(self) -> None:
        """Close the connections of the current loop's client."""
        redis, self._redis, self._loop = self._redis, None, None
        if redis is not None:
            await redis.aclose()


class TokenVerifier:
    """Verify access tokens: EdDSA only, known ``kid``, right issuer and audience, every claim present.

    With ``revocations``, a token that passes is also checked against the revocation records
    (one Redis round trip); without, a token is good until it expires.
    """

    def __init__(
        self, keys: KeySource, *, issuer: str, audience: str, revocations: RevocationList | None = None
    ) -> None:
        self.keys = keys
        self.issuer = issuer
        self.audience = audience
        self.revocations = revocations

    async def verify(self, token: str) -> Principal:
        """Return the principal a token names, or raise :class:`Unauthorized`."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise Unauthorized("The access token is malformed.") from exc
        if header.get("alg") != ALGORITHM or any(h in header for h in _FORBIDDEN_HEADERS):
            raise Unauthorized("The access token uses a forbidden algorithm or header.")
        kid = header.get("kid")
        key = await self.keys.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise Unauthorized("The access token was signed by an unknown key.")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": list(REQUIRED_CLAIMS)},
            )
            principal = Principal(
                user_id=uuid.UUID(claims["sub"]),
                org_id=uuid.UUID(claims["org"]),
                role=Role(claims["role"]),
                scopes=frozenset(claims.get("scopes") or ()),
                operator=bool(claims.get("op", False)),
                token_id=str(claims["jti"]),
                api_key_id=uuid.UUID(claims["akid"]) if claims.get("akid") else None,
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthorized("The access token has expired.") from exc
        except (jwt.PyJWTError, ValueError, KeyError, TypeError) as exc:
            raise Unauthorized("The access token is invalid.") from exc
        if self.revocations is not None:
            await self.revocations.check(claims)
        return principal


def bearer_token(authorization: str | None) -> str | None:
    """Return the token of an ``Authorization: Bearer`` header, if any."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


class JWTAuthMiddleware(AbstractAuthenticationMiddleware):
    """Authenticate every request not marked public; ``request.user`` is the :class:`Principal`.

    A scoped (API-key) token is also held to the scope of the route's declared area here, before
    any guard or handler runs, so no route can forget the check.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Authenticate, answering a refusal here: through ``send``, so outer middleware sees its status."""
        if not should_bypass_middleware(
            exclude_http_methods=self.exclude_http_methods,
            exclude_opt_key=self.exclude_opt_key,
            exclude_path_pattern=self.exclude,
            scope=scope,
            scopes=self.scopes,
        ):
            try:
                result = await self.authenticate_request(ASGIConnection(scope))
            except AppError as exc:
                # Raised, the error would pass the request log and request-id echo on its way out.
                request: Request[Any, Any, Any] = Request(scope, receive)
                await app_error_handler(request, exc).to_asgi_response(None, request)(scope, receive, send)
                return
            scope["user"] = result.user
            scope["auth"] = result.auth
        await self.app(scope, receive, send)

    async def authenticate_request(self, connection: ASGIConnection[Any, Any, Any, Any]) -> AuthenticationResult:
        """Verify the bearer token with the app's verifier, then the route's scope for scoped tokens."""
        token = bearer_token(connection.headers.get("authorization"))
        if token is None:
            raise Unauthorized("An access token is required.")
        verifier: TokenVerifier = connection.app.state.verifier
        principal = await verifier.verify(token)
        handler: BaseRouteHandler | None = connection.scope.get("route_handler")
        principal.require_route(handler.opt if handler is not None else {}, str(connection.scope.get("method", "GET")))
        return AuthenticationResult(user=principal, auth=token)


PUBLIC = {"exclude_from_auth": True}
"""Handler ``opt`` for routes anyone may call (sign-up, login, JWKS, health, inbound hooks)."""


Guard = Callable[[ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], None]


def requires(role: Role) -> Guard:
    """Guard: the caller's role is at least ``role`` (:class:`JWTAuthMiddleware` checks scopes)."""

    def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        principal = connection.user
        if not isinstance(principal, Principal):
            raise Unauthorized("An access token is required.")
        principal.require(role)

    guard.__name__ = f"requires_{role.value}"
    guard.required_role = role  # type: ignore[attr-defined]
    return guard


def operator_only(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Guard: only platform operators pass."""
    principal = connection.user
    if not isinstance(principal, Principal):
        raise Unauthorized("An access token is required.")
    if not principal.operator:
        raise Forbidden("Only operators may do this.")
