"""Opaque secrets: typed prefix, random body, checksum; stored only as SHA-256 hashes.

Like GitHub's token format, every secret names its kind (``twk_`` API key, ``twr_`` refresh
token, ``twi_`` invite) and ends with a CRC32 checksum, so a secret scanner can recognise one
offline and we can reject a mistyped one without touching the database. The bodies carry
about 190 bits of entropy, so a plain SHA-256 is the right hash (no stretching needed).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import zlib
from enum import StrEnum

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_BODY_LENGTH = 32
_CHECKSUM_LENGTH = 6
DISPLAY_PREFIX_LENGTH = 12
"""Characters of an API key kept for display (``twk_`` plus eight random characters)."""


class SecretKind(StrEnum):
    """The kinds of opaque secret, by prefix."""

    API_KEY = "twk_"
    REFRESH_TOKEN = "twr_"  # noqa: S105 - a prefix, not a secret
    INVITE = "twi_"


def _base62(number: int, width: int) -> str:
    chars = []
    for _ in range(width):
        number, rest = divmod(number, 62)
        chars.append(_ALPHABET[rest])
    return "".join(reversed(chars))


def _checksum(prefix: str, body: str) -> str:
    return _base62(zlib.crc32(f"{prefix}{body}".encode()), _CHECKSUM_LENGTH)


def new_secret(kind: SecretKind) -> str:
    """Return a fresh secret of ``kind``: prefix, 32 random base62 characters, 6-character checksum."""
    body = "".join(secrets.choice(_ALPHABET) for _ in range(_BODY_LENGTH))
    return f"{kind.value}{body}{_checksum(kind.value, body)}"


def is_well_formed(secret: str, kind: SecretKind) -> bool:
    """Whether ``secret`` has the shape and checksum of ``kind`` (no database needed)."""
    if len(secret) != len(kind.value) + _BODY_LENGTH + _CHECKSUM_LENGTH or not secret.startswith(kind.value):
        return False
    rest = secret[len(kind.value) :]
    if any(c not in _ALPHABET for c in rest):
        return False
    body, checksum = rest[:_BODY_LENGTH], rest[_BODY_LENGTH:]
    return hmac.compare_digest(checksum, _checksum(kind.value, body))


def hash_secret(secret: str) -> str:
    """Return the SHA-256 hex digest a secret is stored and looked up by."""
    return hashlib.sha256(secret.encode()).hexdigest()


def display_prefix(secret: str) -> str:
    """Return the part of an API key safe to show in lists."""
    return secret[:DISPLAY_PREFIX_LENGTH]
