"""A loopback OpenID Connect provider: discovery, JWKS, /authorize, /token, over real HTTP.

It runs aiohttp in a thread on 127.0.0.1 with an RS256 key generated per run. ``/authorize``
approves at once as ``server.user`` and redirects back with a code and the state; ``/token``
checks the client's authentication (Basic or post), the code (single use), the PKCE verifier
against the S256 challenge and the redirect URI, and answers an ID token. ``server.tamper``
makes the next ID token wrong in one way (``nonce``, ``aud``, ``iss``, ``expired``,
``signature``, ``unknown_kid``); ``server.user`` says who signs in (``email_verified`` too).

As an OAuth 2.0 server for mailboxes: ``/token`` also hands out a refresh token with every code
and takes the ``refresh_token`` grant (``server.refreshes`` counts them; a revoked or unknown
refresh token is ``invalid_grant``, see :meth:`OidcProviderServer.revoke_refresh_tokens`);
``expires_in`` is the lifetime of the access tokens it issues. ``/introspect`` (RFC 7662,
as dovecot's ``oauth2`` passdb asks) answers whether an access token is live and whose it is;
``server.access_tokens`` lists the ones issued, newest last.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode

import httpx
import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa


@dataclass
class OidcUser:
    """Who the provider says is signed in."""

    subject: str
    email: str
    email_verified: bool = True
    name: str = "Signed In"


@dataclass
class Grant:
    """An authorization code the provider handed out."""

    client_id: str
    redirect_uri: str
    challenge: str
    challenge_method: str
    nonce: str | None
    user: OidcUser


@dataclass
class OidcProviderServer:
    """The loopback provider; a context manager that owns its thread."""

    client_id: str = "tidewater-test"
    client_secret: str = field(default_factory=lambda: "cs-" + secrets.token_urlsafe(24))
    auth_methods: tuple[str, ...] = ("client_secret_basic", "client_secret_post")
    user: OidcUser = field(default_factory=lambda: OidcUser(subject="sub-1", email="someone@example.com"))
    tamper: str | None = None
    token_calls: list[dict[str, Any]] = field(default_factory=list)
    token_refusals: list[str] = field(default_factory=list)
    down: bool = False
    expires_in: int = 3600
    refreshes: int = 0
    access_tokens: list[str] = field(default_factory=list)
    introspections: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = "k-" + secrets.token_hex(4)
        self._codes: dict[str, Grant] = {}
        self._refresh: dict[str, Grant] = {}
        self._live: dict[str, tuple[OidcUser, float]] = {}
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="oidc-provider", daemon=True)
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self.port = int(self._sock.getsockname()[1])
        self.issuer = f"http://127.0.0.1:{self.port}"
        self._runner: web.AppRunner | None = None

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> OidcProviderServer:
        """Start serving on loopback."""
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def stop(self) -> None:
        """Stop serving and join the thread."""
        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._loop.close()

    def __enter__(self) -> OidcProviderServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_get("/.well-known/openid-configuration", self._discovery)
        app.router.add_get("/jwks", self._jwks)
        app.router.add_get("/authorize", self._authorize)
        app.router.add_post("/token", self._token)
        app.router.add_post("/introspect", self._introspect)
        # No access log: its lines carry the query (state, PKCE challenge) the tests look for in our logs.
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1, access_log=None)
        await self._runner.setup()
        await web.SockSite(self._runner, self._sock).start()

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # -- handlers -------------------------------------------------------------------------
    def _public_jwk(self, key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
        jwk: dict[str, Any] = jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
        return {**jwk, "kid": kid, "use": "sig", "alg": "RS256"}

    async def _discovery(self, request: web.Request) -> web.StreamResponse:
        if self.down:
            return web.Response(status=503, text="down")
        return web.json_response(
            {
                "issuer": self.issuer,
                "authorization_endpoint": f"{self.issuer}/authorize",
                "token_endpoint": f"{self.issuer}/token",
                "jwks_uri": f"{self.issuer}/jwks",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "token_endpoint_auth_methods_supported": list(self.auth_methods),
                "code_challenge_methods_supported": ["S256"],
            }
        )

    async def _jwks(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"keys": [self._public_jwk(self._key, self.kid)]})

    async def _authorize(self, request: web.Request) -> web.StreamResponse:
        q = request.query
        if q.get("response_type") != "code" or q.get("client_id") != self.client_id or "redirect_uri" not in q:
            return web.Response(status=400, text="bad authorization request")
        code = secrets.token_urlsafe(24)
        with self._lock:
            self._codes[code] = Grant(
                client_id=q["client_id"],
                redirect_uri=q["redirect_uri"],
                challenge=q.get("code_challenge", ""),
                challenge_method=q.get("code_challenge_method", ""),
                nonce=q.get("nonce"),
                user=self.user,
            )
        back = q["redirect_uri"] + "?" + urlencode({"code": code, "state": q.get("state", "")})
        raise web.HTTPFound(back)

    def _refuse(self, reason: str) -> web.StreamResponse:
        self.token_refusals.append(reason)
        return web.json_response({"error": "invalid_grant", "error_description": reason}, status=400)

    async def _token(self, request: web.Request) -> web.StreamResponse:
        form = {k: v[-1] for k, v in parse_qs(await request.text()).items()}
        self.token_calls.append({"headers": dict(request.headers), "form": form})
        client_id, secret = form.get("client_id"), form.get("client_secret")
        header = request.headers.get("authorization", "")
        if header.lower().startswith("basic "):
            client_id, _, secret = base64.b64decode(header[6:]).decode().partition(":")
        if client_id != self.client_id or secret != self.client_secret:
            self.token_refusals.append("client")
            return web.json_response({"error": "invalid_client"}, status=401)
        if form.get("grant_type") == "refresh_token":
            with self._lock:
                refreshed = self._refresh.get(form.get("refresh_token", ""))
            if refreshed is None or refreshed.client_id != client_id:
                return self._refuse("refresh_token")
            self.refreshes += 1
            return web.json_response(self._tokens(refreshed, refresh=None))
        with self._lock:
            grant = self._codes.pop(form.get("code", ""), None)
        if grant is None:
            return self._refuse("code")
        if form.get("redirect_uri") != grant.redirect_uri:
            return self._refuse("redirect_uri")
        verifier = form.get("code_verifier", "")
        digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if grant.challenge_method != "S256" or not verifier or digest != grant.challenge:
            return self._refuse("pkce")
        refresh = secrets.token_urlsafe(24)
        with self._lock:
            self._refresh[refresh] = grant
        return web.json_response({**self._tokens(grant, refresh=refresh), "id_token": self.id_token(grant)})

    def _tokens(self, grant: Grant, *, refresh: str | None) -> dict[str, Any]:
        access = "at-" + secrets.token_urlsafe(24)
        with self._lock:
            self._live[access] = (grant.user, time.time() + self.expires_in)
            self.access_tokens.append(access)
        answer: dict[str, Any] = {"access_token": access, "token_type": "Bearer", "expires_in": self.expires_in}
        if refresh is not None:
            answer["refresh_token"] = refresh
        return answer

    def bearer_check(self, user: str, token: str) -> bool:
        """Whether ``token`` is a live access token this provider issued to ``user`` (SmtpServer's ``xoauth2``)."""
        with self._lock:
            live = self._live.get(token)
        return live is not None and live[1] >= time.time() and live[0].email == user

    def offline_grant(self, redirect_uri: str = "http://127.0.0.1/cb") -> dict[str, Any]:
        """Run the authorization-code flow with PKCE over HTTP as a client would; answer the token response."""
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        query = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": redirect_uri,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "state": "s",
        }
        back = httpx.get(f"{self.issuer}/authorize", params=query, timeout=5)
        code = parse_qs(back.headers["location"].partition("?")[2])["code"][0]
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
        }
        answer: dict[str, Any] = httpx.post(f"{self.issuer}/token", data=form, timeout=5).json()
        return answer

    def connect_sender(self, engine: Any, box: Any, sender_id: uuid.UUID) -> str:
        """Store this provider as the sender's organization's OAuth client and a fresh grant on the sender.

        The sender's ``auth_mode`` becomes ``oauth2``; answers the access token stored.
        """
        import sqlalchemy as sa

        from libs.db.base import utcnow
        from libs.db.session import system_session
        from libs.oauth_tokens import client_bound, seal

        grant = self.offline_grant()
        now = utcnow()
        with system_session(engine) as session:
            org_id = session.execute(sa.text("SELECT org_id FROM senders WHERE id = :s"), {"s": sender_id}).scalar_one()
            session.execute(
                sa.text(
                    "INSERT INTO oauth_clients (id, org_id, provider, client_id, client_secret_encrypted,"
                    " client_secret_last4, authorize_url, token_url, scope, created_at, updated_at)"
                    " VALUES (:id, :org, 'generic', :cid, :secret, :last4, :auth, :token, 'mail', :now, :now)"
                    " ON CONFLICT (org_id, provider) DO NOTHING"
                ),
                {
                    "id": uuid.uuid4(),
                    "org": org_id,
                    "cid": self.client_id,
                    "secret": box.encrypt(self.client_secret, associated_data=client_bound(org_id)),
                    "last4": self.client_secret[-4:],
                    "auth": f"{self.issuer}/authorize",
                    "token": f"{self.issuer}/token",
                    "now": now,
                },
            )
            session.execute(
                sa.text(
                    "INSERT INTO sender_oauth (sender_id, org_id, provider, access_token_encrypted,"
                    " refresh_token_encrypted, expires_at, status, connected_at, updated_at)"
                    " VALUES (:s, :org, 'generic', :access, :refresh, :expires, 'connected', :now, :now)"
                ),
                {
                    "s": sender_id,
                    "org": org_id,
                    "access": seal(box, sender_id, "access", grant["access_token"]),
                    "refresh": seal(box, sender_id, "refresh", grant["refresh_token"]),
                    "expires": now + timedelta(seconds=int(grant["expires_in"])),
                    "now": now,
                },
            )
            session.execute(sa.text("UPDATE senders SET auth_mode = 'oauth2' WHERE id = :s"), {"s": sender_id})
        return str(grant["access_token"])

    def revoke_refresh_tokens(self) -> None:
        """Forget every refresh token handed out: the next refresh is ``invalid_grant``."""
        with self._lock:
            self._refresh.clear()

    async def _introspect(self, request: web.Request) -> web.StreamResponse:
        form = {k: v[-1] for k, v in parse_qs(await request.text()).items()}
        token = form.get("token") or request.headers.get("authorization", "").removeprefix("Bearer ")
        self.introspections.append(token)
        with self._lock:
            live = self._live.get(token)
        if live is None or live[1] < time.time():
            return web.json_response({"active": False})
        user, expires = live
        return web.json_response(
            {
                "active": True,
                "username": user.email,
                "sub": user.subject,
                "exp": int(expires),
                "client_id": self.client_id,
            }
        )

    def id_token(self, grant: Grant) -> str:
        """An ID token for ``grant``, made wrong as ``tamper`` says."""
        now = int(time.time())
        user = grant.user
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": user.subject,
            "aud": grant.client_id,
            "iat": now,
            "exp": now + 300,
            "nonce": grant.nonce,
            "email": user.email,
            "email_verified": user.email_verified,
            "name": user.name,
        }
        tamper, self.tamper = self.tamper, None
        key, kid = self._key, self.kid
        if tamper == "nonce":
            claims["nonce"] = "not-the-nonce"
        elif tamper == "aud":
            claims["aud"] = "someone-else"
        elif tamper == "iss":
            claims["iss"] = "https://evil.example"
        elif tamper == "expired":
            claims["iat"], claims["exp"] = now - 7200, now - 3600
        elif tamper == "signature":
            key = self._other_key
        elif tamper == "unknown_kid":
            key, kid = self._other_key, "k-unknown"
        return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})


@contextmanager
def oidc_provider(**kwargs: Any) -> Iterator[OidcProviderServer]:
    """Run an :class:`OidcProviderServer` for the duration of the block."""
    server = OidcProviderServer(**kwargs)
    server.start()
    try:
        yield server
    finally:
        server.stop()
