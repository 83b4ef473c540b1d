"""Token-signing keys: Ed25519 keys kept in the database (private half sealed), JWKS, rotation."""

from __future__ import annotations

import re
import secrets
import time
import uuid
from datetime import datetime, timedelta
from typing import Any

import jwt
import sqlalchemy as sa
import structlog
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from libs.crypto import SecretBox
from libs.db.base import utcnow
from libs.db.models.auth import SigningKey
from libs.db.session import Database
from libs.security import ALGORITHM, LEEWAY_SECONDS, KeySource

log = structlog.get_logger(__name__)

_ROTATION_LOCK = 0x7A17_0002  # serialises key creation across processes
_KID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def _associated_data(kid: str) -> bytes:
    # Binds each ciphertext to its row: a sealed key copied onto another kid will not open.
    return f"signing_keys:{kid}".encode()


class SigningKeys:
    """Create, rotate, publish and load signing keys; a process reuses its key for a short while."""

    def __init__(self, box: SecretBox, *, access_token_ttl: int, cache_seconds: float = 30.0) -> None:
        self.box = box
        self.access_token_ttl = access_token_ttl
        self.cache_seconds = cache_seconds
        self._current: tuple[str, Ed25519PrivateKey] | None = None
        self._loaded_at = 0.0
        self.generation = 0
        """Bumped by every rotation in this process, so local caches reload at once."""

    @property
    def publish_window(self) -> timedelta:
        """How long a retired key stays in the JWKS: until every token it signed has expired."""
        return timedelta(seconds=self.access_token_ttl + 2 * self.cache_seconds + LEEWAY_SECONDS + 60)

    def _new_row(self) -> SigningKey:
        private = Ed25519PrivateKey.generate()
        kid = secrets.token_urlsafe(12)
        jwk = OKPAlgorithm.to_jwk(private.public_key(), as_dict=True)
        pem = private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        return SigningKey(
            kid=kid,
            algorithm=ALGORITHM,
            public_jwk={**jwk, "kid": kid, "alg": ALGORITHM, "use": "sig"},
            private_key_encrypted=self.box.encrypt(pem, associated_data=_associated_data(kid)),
        )

    async def ensure(self, session: AsyncSession) -> SigningKey:
        """Return the active key, creating the first one if there is none."""
        active = await self._active(session)
        if active is not None:
            return active
        await session.exec(sa.select(sa.func.pg_advisory_xact_lock(_ROTATION_LOCK)))  # type: ignore[call-overload]
        active = await self._active(session)
        if active is None:
            active = self._new_row()
            session.add(active)
            await session.flush()
            log.info("signing_key_created", kid=active.kid)
        return active

    async def rotate(self, session: AsyncSession) -> SigningKey:
        """Make a new key the signer; older keys stay published until their tokens have expired."""
        await session.exec(sa.select(sa.func.pg_advisory_xact_lock(_ROTATION_LOCK)))  # type: ignore[call-overload]
        now = utcnow()
        await session.exec(sa.update(SigningKey).where(col(SigningKey.retired_at).is_(None)).values(retired_at=now))
        key = self._new_row()
        key.created_at = now
        session.add(key)
        await session.flush()
        self._current = None
        self.generation += 1
        log.info("signing_key_rotated", kid=key.kid)
        return key

    async def _active(self, session: AsyncSession) -> SigningKey | None:
        stmt = (
            select(SigningKey)
            .where(col(SigningKey.retired_at).is_(None))
            .order_by(col(SigningKey.created_at).desc())
            .limit(1)
        )
        return (await session.exec(stmt)).first()

    async def published(self, session: AsyncSession, now: datetime | None = None) -> list[SigningKey]:
        """Keys whose tokens may still be valid: the active one and those retired recently."""
        cutoff = (now or utcnow()) - self.publish_window
        stmt = (
            select(SigningKey)
            .where(sa.or_(col(SigningKey.retired_at).is_(None), col(SigningKey.retired_at) > cutoff))
            .order_by(col(SigningKey.created_at).desc())
        )
        return list((await session.exec(stmt)).all())

    async def jwks(self, session: AsyncSession) -> dict[str, Any]:
        """The JWKS document: public halves only."""
        return {"keys": [dict(k.public_jwk) for k in await self.published(session)]}

    async def current(self, session: AsyncSession) -> tuple[str, Ed25519PrivateKey]:
        """Return ``(kid, private key)`` of the active key, from cache when fresh."""
        if self._current is None or time.monotonic() - self._loaded_at > self.cache_seconds:
            row = await self.ensure(session)
            pem = self.box.decrypt(row.private_key_encrypted, associated_data=_associated_data(row.kid))
            private = serialization.load_pem_private_key(pem.encode(), password=None)
            assert isinstance(private, Ed25519PrivateKey)
            self._current = (row.kid, private)
            self._loaded_at = time.monotonic()
        return self._current

    async def sign(self, session: AsyncSession, claims: dict[str, Any]) -> str:
        """Sign ``claims`` with the active key, naming it in the ``kid`` header."""
        kid, private = await self.current(session)
        return jwt.encode(claims, private, algorithm=ALGORITHM, headers={"kid": kid})


class DatabaseKeySource(KeySource):
    """The auth service's own verification keys, read from its database instead of over HTTP."""

    def __init__(self, database: Database, keys: SigningKeys, *, ttl: float = 30.0, refresh_floor: float = 1.0) -> None:
        super().__init__(jwks={"keys": []})
        self.database = database
        self.signing_keys = keys
        self.ttl = ttl
        self.floor = refresh_floor
        self._loaded: dict[str, Any] = {}
        self._loaded_at = -1e9
        self._generation = -1

    async def get(self, kid: str) -> Any:
        """Return the public key ``kid``; reload when stale or when the kid is new (at most once a second)."""
        if not _KID.match(kid):
            return None
        age = time.monotonic() - self._loaded_at
        rotated = self._generation != self.signing_keys.generation
        if rotated or (kid not in self._loaded and age > self.floor) or age > self.ttl:
            generation = self.signing_keys.generation
            async with self.database.system() as session:
                self._loaded = self._parse(await self.signing_keys.jwks(session))
            self._loaded_at = time.monotonic()
            self._generation = generation
        return self._loaded.get(kid)


async def rotate_signing_key(database: Database, keys: SigningKeys) -> SigningKey:
    """Rotate the signing key in its own transaction and return the new key."""
    async with database.system() as session:
        return await keys.rotate(session)


def new_token_id() -> str:
    """Return a fresh ``jti``."""
    return uuid.uuid4().hex
