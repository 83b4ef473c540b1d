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
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult

from libs.errors import Forbidden, Unauthorized

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

    def require_scope(self, scope: str) -> None:
        """Raise :class:`Forbidden` unless the token carries ``scope`` (API-key tokens are scoped)."""
        if self.scopes and scope not in self.scopes and "*" not in self.scopes:
            raise Forbidden(f"This action needs the {scope} scope.")


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
    """Authenticate every request not marked public; ``request.user`` is the :class:`Principal`."""

    async def authenticate_request(self, connection: ASGIConnection[Any, Any, Any, Any]) -> AuthenticationResult:
        """Verify the bearer token with the app's verifier."""
        token = bearer_token(connection.headers.get("authorization"))
        if token is None:
            raise Unauthorized("An access token is required.")
        verifier: TokenVerifier = connection.app.state.verifier
        principal = await verifier.verify(token)
        return AuthenticationResult(user=principal, auth=token)


PUBLIC = {"exclude_from_auth": True}
"""Handler ``opt`` for routes anyone may call (sign-up, login, JWKS, health, inbound hooks)."""


Guard = Callable[[ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], None]


def requires(role: Role, *, scope: str | None = None) -> Guard:
    """Guard: the caller's role is at least ``role`` (and its token carries ``scope``, if given)."""

    def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        principal = connection.user
        if not isinstance(principal, Principal):
            raise Unauthorized("An access token is required.")
        principal.require(role)
        if scope:
            principal.require_scope(scope)

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
