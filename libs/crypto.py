"""Encrypt secrets at rest (SMTP passwords, provider tokens) with AES-256-GCM and key rotation.

A token looks like ``v1.<kid>.<base64url(nonce || ciphertext+tag)>``:

- ``kid`` names the key that sealed it (8 hex characters derived from the key, so it says
  nothing about the key itself), which lets old tokens open after a rotation;
- the 96-bit nonce is random per encryption (safe for far more than 2^32 messages per key
  at our volumes);
- the 128-bit GCM tag makes any change to the token fail to open.

Keys are never used as given: each secret string is stretched with HKDF-SHA256 into a
32-byte AES key, under an ``info`` label reserved for this purpose, so the same
``secret_key`` that signs links does not double as an encryption key.

Rotation: put the new secret in ``SDR_SECRET_KEY`` and the old one(s) in
``SDR_ENCRYPTION_KEYS`` (comma-separated). New tokens use the first (primary) key; tokens
sealed by any listed key still open; :meth:`SecretBox.rotate` re-seals an old token under the
primary key (run it over the ``*_encrypted`` columns, then drop the old key).
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from libs.settings import CommonSettings

VERSION = "v1"
_NONCE_BYTES = 12
_KEY_INFO = b"tidewater/secretbox/v1/aes-256-gcm"
_KID_INFO = b"tidewater/secretbox/v1/key-id"
_SALT = b"tidewater-secretbox"


class SecretBoxError(Exception):
    """A token cannot be opened: malformed, tampered with, or sealed by a key we no longer hold."""


@dataclass(frozen=True, slots=True)
class _Key:
    kid: str
    aead: AESGCM


def _derive(secret: str, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=_SALT, info=info).derive(secret.encode("utf-8"))


def _make_key(secret: str) -> _Key:
    if not secret:
        raise ValueError("an encryption secret may not be empty")
    kid = _derive(secret, _KID_INFO, 4).hex()
    return _Key(kid=kid, aead=AESGCM(_derive(secret, _KEY_INFO, 32)))


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SecretBox:
    """Seal and open short secrets; the first key seals, every key opens."""

    def __init__(self, keys: Iterable[str]) -> None:
        derived: list[_Key] = []
        for secret in keys:
            key = _make_key(secret)
            if all(k.kid != key.kid for k in derived):
                derived.append(key)
        if not derived:
            raise ValueError("a SecretBox needs at least one key")
        self._primary = derived[0]
        self._keys = {k.kid: k for k in derived}

    @classmethod
    def from_settings(cls, settings: CommonSettings) -> SecretBox:
        """Build the box from ``secret_key`` (primary) and ``encryption_keys`` (older keys, comma-separated)."""
        extra = settings.encryption_keys.get_secret_value() if settings.encryption_keys else ""
        return cls([settings.secret_key.get_secret_value(), *(k.strip() for k in extra.split(",") if k.strip())])

    @property
    def primary_kid(self) -> str:
        """The id of the key new tokens are sealed with."""
        return self._primary.kid

    def encrypt(self, plaintext: str, *, associated_data: bytes | None = None) -> str:
        """Seal ``plaintext`` under the primary key; ``associated_data`` must be given again to open it."""
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._primary.aead.encrypt(nonce, plaintext.encode("utf-8"), associated_data)
        return f"{VERSION}.{self._primary.kid}.{_b64encode(nonce + sealed)}"

    def decrypt(self, token: str, *, associated_data: bytes | None = None) -> str:
        """Open a token sealed by any key this box holds.

        Raises:
            SecretBoxError: the token is malformed, tampered with, or its key is unknown.
        """
        key, nonce, sealed = self._parse(token)
        try:
            return key.aead.decrypt(nonce, sealed, associated_data).decode("utf-8")
        except (InvalidTag, UnicodeDecodeError) as exc:
            raise SecretBoxError("the token was tampered with or sealed with other associated data") from exc

    def key_id(self, token: str) -> str:
        """Return the id of the key that sealed ``token``.

        Raises:
            SecretBoxError: the token is malformed.
        """
        version, _, rest = token.partition(".")
        kid, _, _ = rest.partition(".")
        if version != VERSION or not kid:
            raise SecretBoxError("not a SecretBox token")
        return kid

    def needs_rotation(self, token: str) -> bool:
        """Whether ``token`` was sealed by a key other than the primary one."""
        return self.key_id(token) != self._primary.kid

    def rotate(self, token: str, *, associated_data: bytes | None = None) -> str:
        """Return ``token`` re-sealed under the primary key (unchanged when it already is).

        Raises:
            SecretBoxError: the token cannot be opened.
        """
        if not self.needs_rotation(token):
            self._parse(token)
            return token
        return self.encrypt(self.decrypt(token, associated_data=associated_data), associated_data=associated_data)

    def _parse(self, token: str) -> tuple[_Key, bytes, bytes]:
        parts = token.split(".")
        if len(parts) != 3 or parts[0] != VERSION:
            raise SecretBoxError("not a SecretBox token")
        key = self._keys.get(parts[1])
        if key is None:
            raise SecretBoxError("the token was sealed with a key this box does not hold")
        try:
            raw = _b64decode(parts[2])
        except (binascii.Error, ValueError) as exc:
            raise SecretBoxError("not a SecretBox token") from exc
        if len(raw) < _NONCE_BYTES + 16:
            raise SecretBoxError("the token is truncated")
        return key, raw[:_NONCE_BYTES], raw[_NONCE_BYTES:]


def last4(secret: str) -> str:
    """Return the last four characters of a secret (what the API may show), or fewer if it is short."""
    return secret[-4:] if len(secret) > 8 else ""
