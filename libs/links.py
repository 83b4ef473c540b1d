"""Signed per-message links: unsubscribe, open pixel and click redirects.

A token names one message and what it may do; it is an HMAC over its payload with a key
derived from the settings' secret, so ids cannot be guessed or altered.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass
from enum import StrEnum


class LinkKind(StrEnum):
    """What a link does when followed."""

    UNSUBSCRIBE = "u"
    OPEN = "o"
    CLICK = "c"


@dataclass(frozen=True, slots=True)
class LinkClaims:
    """What a verified token says."""

    kind: LinkKind
    message_id: uuid.UUID
    url_index: int | None = None


class InvalidLink(ValueError):
    """The token was forged, altered or is not of the expected kind."""


def _key(secret: str) -> bytes:
    return hashlib.sha256(b"tidewater-links\x00" + secret.encode()).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign_link(secret: str, kind: LinkKind, message_id: uuid.UUID, url_index: int | None = None) -> str:
    """Return a URL-safe token for ``kind`` on ``message_id`` (``url_index``: which link of the message)."""
    payload = [kind.value, message_id.hex] + ([url_index] if url_index is not None else [])
    body = _b64(json.dumps(payload, separators=(",", ":")).encode())
    mac = hmac.new(_key(secret), body.encode(), hashlib.sha256).digest()[:16]
    return f"{body}.{_b64(mac)}"


def verify_link(secret: str, token: str, kind: LinkKind) -> LinkClaims:
    """Return the claims of ``token`` or raise :class:`InvalidLink`."""
    body, _, mac = token.partition(".")
    if not body or not mac or len(token) > 512:
        raise InvalidLink("malformed link token")
    expected = hmac.new(_key(secret), body.encode(), hashlib.sha256).digest()[:16]
    try:
        given = _unb64(mac)
        payload = json.loads(_unb64(body))
    except (ValueError, TypeError) as exc:
        raise InvalidLink("malformed link token") from exc
    if not hmac.compare_digest(expected, given):
        raise InvalidLink("link token signature mismatch")
    if not isinstance(payload, list) or len(payload) not in (2, 3) or payload[0] != kind.value:
        raise InvalidLink("link token is not of the expected kind")
    try:
        url_index = int(payload[2]) if len(payload) == 3 else None
        return LinkClaims(kind=kind, message_id=uuid.UUID(hex=payload[1]), url_index=url_index)
    except (ValueError, TypeError) as exc:
        raise InvalidLink("malformed link token") from exc
