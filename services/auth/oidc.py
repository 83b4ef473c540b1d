"""Single sign-on with an OpenID Connect provider (Google, Microsoft Entra, any issuer).

The authorization-code flow with PKCE (S256), a ``state`` and a ``nonce``: ``/sso/start`` keeps the
three server-side in Redis for ``SDR_OIDC_STATE_TTL`` seconds and sends the browser to the
provider; ``/sso/callback`` takes the state back exactly once (``GETDEL``), trades the code at the
token endpoint (Authlib's OAuth 2 client, with the client authentication the discovery document
offers) and verifies the ID token: its signature by the provider's JWKS (fetched again once when
the ``kid`` is unknown), then ``iss``, ``aud``, ``exp``, ``iat``, ``nonce``, ``azp`` and ``at_hash``
(Authlib's ``CodeIDToken``), and ``email_verified``.

Outbound addresses: the issuer is the operator's choice and is called as configured; an endpoint
the discovery document names on another host must resolve to public addresses
(``libs.netpolicy``), a rule lifted outside production so a provider can run on the developer's
machine. Nothing here logs a token, a code or the client secret.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
import socket
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import anyio.to_thread
import httpx
import jwt
import structlog
from authlib.integrations.httpx_client import AsyncOAuth2Client
from authlib.oidc.core import CodeIDToken
from redis import Redis

from libs import netpolicy
from libs.settings import Environment
from services.auth.settings import AuthSettings

log = structlog.get_logger(__name__)

CALLBACK_PATH = "/api/auth/sso/callback"
_STATE_PREFIX = "auth:sso:state:"
_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
_MAX_DOCUMENT_BYTES = 512 * 1024


class SsoFailed(Exception):
    """The sign-in failed; ``code`` is what the sign-in page is told (never a secret)."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(code)
        self.code = code
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Pending:
    """A sign-in under way, kept server-side between ``/start`` and ``/callback``."""

    nonce: str
    verifier: str
    next_path: str


@dataclass(frozen=True, slots=True)
class Identity:
    """Who the provider says signed in (the ID token's claims, verified)."""

    issuer: str
    subject: str
    email: str
    name: str | None


class StateStore:
    """Pending sign-ins in Redis: single use, short-lived, stored under a hash of the state."""

    def __init__(self, redis: Redis, ttl: int) -> None:
        self.redis = redis
        self.ttl = ttl

    @staticmethod
    def _key(state: str) -> str:
        return _STATE_PREFIX + hashlib.sha256(state.encode()).hexdigest()

    async def put(self, state: str, pending: Pending) -> None:
        """Remember ``pending`` under ``state``."""
        value = json.dumps({"nonce": pending.nonce, "verifier": pending.verifier, "next": pending.next_path})
        await anyio.to_thread.run_sync(lambda: self.redis.set(self._key(state), value, ex=self.ttl))

    async def take(self, state: str) -> Pending | None:
        """Return and forget what ``state`` stood for; ``None`` when unknown, used or expired."""
        raw = await anyio.to_thread.run_sync(lambda: self.redis.getdel(self._key(state)))
        if raw is None:
            return None
        data = json.loads(raw)
        return Pending(nonce=data["nonce"], verifier=data["verifier"], next_path=data["next"])


def safe_next(value: str | None) -> str:
    """A same-site path to land on after signing in (anything else is ``/``)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value) or len(value) > 2000:
        return "/"
    return value


class OidcProvider:
    """One configured provider: discovery and keys (cached), the authorize URL, the code exchange."""

    def __init__(self, settings: AuthSettings) -> None:
        assert settings.oidc_issuer
        assert settings.oidc_client_id
        self.settings = settings
        self.issuer = settings.oidc_issuer.rstrip("/")
        self.client_id = settings.oidc_client_id
        self.redirect_uri = settings.public_base_url.rstrip("/") + CALLBACK_PATH
        self._metadata: dict[str, Any] | None = None
        self._metadata_at = 0.0
        self._jwks: dict[str, Any] | None = None
        self._jwks_at = 0.0
        self._lock = asyncio.Lock()

    @property
    def _private_allowed(self) -> bool:
        return self.settings.env is not Environment.PRODUCTION

    def _check_endpoint(self, url: str) -> None:
        """Refuse an endpoint URL the outbound policy does not allow (the issuer's own host always is)."""
        parts = urlsplit(url)
        issuer = urlsplit(self.issuer)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise SsoFailed("provider_misconfigured", "endpoint is not an http(s) URL")
        if parts.scheme == "http" and self.settings.env is Environment.PRODUCTION:
            raise SsoFailed("provider_misconfigured", "endpoint is not https")
        if parts.hostname == issuer.hostname or self._private_allowed:
            return
        try:
            infos = socket.getaddrinfo(parts.hostname, parts.port or 443, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise SsoFailed("provider_unavailable", "endpoint host does not resolve") from exc
        for info in infos:
            why = netpolicy.refusal(str(info[4][0]))
            if why is not None:
                raise SsoFailed("provider_misconfigured", f"endpoint address is not public ({why})")

    async def _get_json(self, url: str) -> dict[str, Any]:
        try:
            async with httpx.AsyncClient(
                timeout=self.settings.oidc_timeout, follow_redirects=False, trust_env=False
            ) as client:
                response = await client.get(url, headers={"accept": "application/json"})
        except httpx.HTTPError as exc:
            raise SsoFailed("provider_unavailable", type(exc).__name__) from exc
        if response.status_code != 200 or len(response.content) > _MAX_DOCUMENT_BYTES:
            raise SsoFailed("provider_unavailable", f"HTTP {response.status_code}")
        try:
            data = response.json()
        except ValueError as exc:
            raise SsoFailed("provider_unavailable", "not JSON") from exc
        if not isinstance(data, dict):
            raise SsoFailed("provider_unavailable", "not a JSON object")
        return data

    def _fresh(self, at: float) -> bool:
        return time.monotonic() - at < self.settings.oidc_metadata_cache_seconds

    async def metadata(self) -> dict[str, Any]:
        """The discovery document (``{issuer}/.well-known/openid-configuration``), cached."""
        async with self._lock:
            if self._metadata is not None and self._fresh(self._metadata_at):
                return self._metadata
            data = await self._get_json(self.issuer + "/.well-known/openid-configuration")
            if str(data.get("issuer", "")).rstrip("/") != self.issuer:
                raise SsoFailed("provider_misconfigured", "discovery issuer differs from the configured one")
            for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                if not isinstance(data.get(name), str):
                    raise SsoFailed("provider_misconfigured", f"discovery lacks {name}")
            self._metadata, self._metadata_at = data, time.monotonic()
            return data

    async def jwks(self, *, force: bool = False) -> dict[str, Any]:
        """The provider's keys, cached; ``force`` fetches them again (a key the cache does not know)."""
        metadata = await self.metadata()
        async with self._lock:
            if not force and self._jwks is not None and self._fresh(self._jwks_at):
                return self._jwks
            url = metadata["jwks_uri"]
            await anyio.to_thread.run_sync(self._check_endpoint, url)
            data = await self._get_json(url)
            if not isinstance(data.get("keys"), list):
                raise SsoFailed("provider_misconfigured", "JWKS has no keys")
            self._jwks, self._jwks_at = data, time.monotonic()
            return data

    def _client(self, metadata: dict[str, Any]) -> AsyncOAuth2Client:
        methods = metadata.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
        method = "client_secret_basic" if "client_secret_basic" in methods else "client_secret_post"
        secret = self.settings.oidc_client_secret
        return AsyncOAuth2Client(
            client_id=self.client_id,
            client_secret=secret.get_secret_value() if secret else None,
            token_endpoint_auth_method=method if secret else "none",
            scope=self.settings.oidc_scopes,
            redirect_uri=self.redirect_uri,
            code_challenge_method="S256",
            timeout=self.settings.oidc_timeout,
            follow_redirects=False,
            trust_env=False,
        )

    async def authorize_url(self, state: str, pending: Pending) -> str:
        """Where to send the browser: the authorize endpoint with state, nonce and the PKCE challenge."""
        metadata = await self.metadata()
        async with self._client(metadata) as client:
            url, _ = client.create_authorization_url(
                metadata["authorization_endpoint"], state=state, code_verifier=pending.verifier, nonce=pending.nonce
            )
        return str(url)

    async def exchange(self, code: str, pending: Pending) -> Identity:
        """Trade the code for tokens and return the verified identity of the ID token."""
        metadata = await self.metadata()
        token_endpoint = metadata["token_endpoint"]
        await anyio.to_thread.run_sync(self._check_endpoint, token_endpoint)
        try:
            async with self._client(metadata) as client:
                token = await client.fetch_token(
                    token_endpoint, grant_type="authorization_code", code=code, code_verifier=pending.verifier
                )
        except SsoFailed:
            raise
        except Exception as exc:  # the provider refused the code, or could not be reached
            raise SsoFailed("token_refused", type(exc).__name__) from exc
        id_token = token.get("id_token")
        if not isinstance(id_token, str):
            raise SsoFailed("id_token_invalid", "no id_token")
        claims = await self._verify(id_token, token.get("access_token"), pending.nonce, metadata)
        if claims.get("email_verified") is not True or not isinstance(claims.get("email"), str):
            raise SsoFailed("email_unverified")
        name = claims.get("name")
        return Identity(
            issuer=self.issuer,
            subject=str(claims["sub"]),
            email=claims["email"],
            name=name[:200] if isinstance(name, str) and name else None,
        )

    async def _key(self, header: dict[str, Any]) -> jwt.PyJWK:
        kid = header.get("kid")
        for force in (False, True):
            keys = (await self.jwks(force=force))["keys"]
            found = [k for k in keys if isinstance(k, dict) and (kid is None or k.get("kid") == kid)]
            found = [k for k in found if k.get("use", "sig") == "sig"]
            if len(found) == 1 or (kid is not None and found):
                try:
                    return jwt.PyJWK(found[0])
                except jwt.PyJWTError as exc:
                    raise SsoFailed("id_token_invalid", "unusable key") from exc
        raise SsoFailed("id_token_invalid", "unknown signing key")

    async def _verify(self, id_token: str, access_token: Any, nonce: str, metadata: dict[str, Any]) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(id_token)
        except jwt.PyJWTError as exc:
            raise SsoFailed("id_token_invalid", "malformed") from exc
        allowed = [a for a in metadata.get("id_token_signing_alg_values_supported") or ["RS256"] if a in _ALGORITHMS]
        if header.get("alg") not in allowed:
            raise SsoFailed("id_token_invalid", "algorithm not allowed")
        key = await self._key(header)
        try:
            claims: dict[str, Any] = jwt.decode(
                id_token,
                key=key,
                algorithms=[header["alg"]],
                audience=self.client_id,
                issuer=metadata["issuer"],
                leeway=60,
                options={"require": ["iss", "sub", "aud", "exp", "iat"]},
            )
        except jwt.PyJWTError as exc:
            raise SsoFailed("id_token_invalid", type(exc).__name__) from exc
        params: dict[str, Any] = {"nonce": nonce, "client_id": self.client_id}
        if isinstance(access_token, str):
            params["access_token"] = access_token
        options = {"iss": {"essential": True, "values": [metadata["issuer"]]}, "aud": {"essential": True}}
        checked = CodeIDToken(claims, header, options, params)
        try:
            checked.validate(leeway=60)
        except Exception as exc:  # joserfc's claim errors: wrong nonce, azp, at_hash, ...
            raise SsoFailed("id_token_invalid", type(exc).__name__) from exc
        if claims.get("nonce") != nonce:
            raise SsoFailed("id_token_invalid", "nonce")
        return claims


def new_pending(next_path: str | None) -> tuple[str, Pending]:
    """A fresh state and what it stands for (nonce, PKCE verifier, where to land)."""
    return secrets.token_urlsafe(32), Pending(
        nonce=secrets.token_urlsafe(32), verifier=secrets.token_urlsafe(48), next_path=safe_next(next_path)
    )
