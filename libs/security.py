"""Token verification and the principal every handler acts for.

The auth service signs access tokens with an Ed25519 key named by ``kid``; everyone else
verifies them against the JWKS it publishes. Nothing here trusts a header it did not verify.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import httpx
import jwt
from jwt import PyJWK
from litestar import Request
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult
from litestar.middleware._utils import should_bypass_middleware
from litestar.types import Receive, Scope, Send

from libs.errors import AppError, Forbidden, Unauthorized, app_error_handler
from libs.scopes import KNOWN_SCOPES, Requirement, grants, required_scope

ALGORITHM = "EdDSA"
REQUIRED_CLAIMS = ("iss", "aud", "sub", "org", "role", "exp", "iat", "jti")
_FORBIDDEN_HEADERS = ("jku", "jwk", "x5u", "x5c")
LEEWAY_SECONDS = 30


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


class TokenVerifier:
    """Verify access tokens: EdDSA only, known ``kid``, right issuer and audience, every claim present."""

    def __init__(self, keys: KeySource, *, issuer: str, audience: str) -> None:
        self.keys = keys
        self.issuer = issuer
        self.audience = audience

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
            return Principal(
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
