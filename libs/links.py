"""Signed per-message links: unsubscribe, open pixel and click redirects.

A token names one message and what it may do; it is an HMAC over its payload with a key
derived from the settings' secret, so ids cannot be guessed or altered.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
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
    # Only the canonical encoding is accepted: base64 leaves spare bits in the last character.
    if not hmac.compare_digest(expected, given) or _b64(given) != mac:
        raise InvalidLink("link token signature mismatch")
    if not isinstance(payload, list) or len(payload) not in (2, 3) or payload[0] != kind.value:
        raise InvalidLink("link token is not of the expected kind")
    try:
        url_index = int(payload[2]) if len(payload) == 3 else None
        return LinkClaims(kind=kind, message_id=uuid.UUID(hex=payload[1]), url_index=url_index)
    except (ValueError, TypeError) as exc:
        raise InvalidLink("malformed link token") from exc


_URL = re.compile(r"https?://[^\s<>\"'()\[\]]+", re.IGNORECASE)
_TRAILING = ".,;:!?"
MAX_TRACKED_LINKS = 100
"""A message carries at most this many tracked URLs; any further URL is left as it is."""


def link_url(base_url: str, kind: LinkKind, token: str) -> str:
    """Return the public URL of ``token`` (``{base}/u/{token}``, ``/o/``, ``/c/``)."""
    return f"{base_url.rstrip('/')}/{kind.value}/{token}"


def unsubscribe_url(secret: str, base_url: str, message_id: uuid.UUID) -> str:
    """Return the signed unsubscribe URL of a message (``List-Unsubscribe`` and the footer link)."""
    return link_url(base_url, LinkKind.UNSUBSCRIBE, sign_link(secret, LinkKind.UNSUBSCRIBE, message_id))


def open_url(secret: str, base_url: str, message_id: uuid.UUID) -> str:
    """Return the signed open-pixel URL of a message."""
    return link_url(base_url, LinkKind.OPEN, sign_link(secret, LinkKind.OPEN, message_id))


def click_url(secret: str, base_url: str, message_id: uuid.UUID, url_index: int) -> str:
    """Return the signed click URL for the ``url_index``-th stored URL of a message."""
    return link_url(base_url, LinkKind.CLICK, sign_link(secret, LinkKind.CLICK, message_id, url_index))


def track_links(secret: str, base_url: str, message_id: uuid.UUID, text: str) -> tuple[str, list[str]]:
    """Replace each http(s) URL of ``text`` by its click URL; return the new text and the URLs by index.

    The sender stores the returned list as ``message_links`` rows (``position`` = index) in the
    same transaction as the message body: a click can only redirect to one of them.
    """
    urls: list[str] = []

    def replace(match: re.Match[str]) -> str:
        found = match.group(0)
        url = found.rstrip(_TRAILING)
        tail = found[len(url) :]
        if len(url) > 2048:
            return found
        if url not in urls:
            if len(urls) >= MAX_TRACKED_LINKS:
                return found
            urls.append(url)
        return click_url(secret, base_url, message_id, urls.index(url)) + tail

    return _URL.sub(replace, text), urls
