"""DKIM (RFC 6376): an RSA-2048 key pair per sending domain, its DNS record, and signatures by dkimpy.

The private key is PEM (PKCS#8) text, sealed at rest with :class:`libs.crypto.SecretBox` by
:func:`seal` (the organization and domain are the associated data, so a key copied to another
row does not open). The public key is the base64 DER (SubjectPublicKeyInfo) of the ``p=`` tag.
"""

from __future__ import annotations

import base64
import re
import uuid
from dataclasses import dataclass
from datetime import datetime

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from libs.crypto import SecretBox

KEY_BITS = 2048
SIGNED_HEADERS = (
    "From",
    "To",
    "Cc",
    "Reply-To",
    "Subject",
    "Date",
    "Message-ID",
    "In-Reply-To",
    "References",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "MIME-Version",
    "Content-Type",
)
"""The headers a signature covers, when the message has them (RFC 8058 asks for both List-Unsubscribe ones)."""
_HEADER_NAME = re.compile(rb"(?m)^([!-9;-~]+):")


@dataclass(frozen=True, slots=True)
class KeyPair:
    """A fresh key pair: the private key as PEM text, the public key as the ``p=`` base64."""

    private_pem: str
    public_key: str


def generate() -> KeyPair:
    """Generate an RSA-2048 key pair."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return KeyPair(private_pem=pem, public_key=base64.b64encode(der).decode("ascii"))


def selector_for(moment: datetime, taken: str | None = None) -> str:
    """The selector of a key made at ``moment``: ``tw`` + yyyymm, with a letter when ``taken`` has that one."""
    base = f"tw{moment:%Y%m}"
    if taken is None or not taken.startswith(base):
        return base
    suffix = taken[len(base) :]
    if not suffix:
        return base + "b"
    return base + (chr(ord(suffix[-1]) + 1) if suffix[-1] < "z" else suffix + "b")


def record_name(selector: str, domain: str) -> str:
    """Where the public key is published: ``<selector>._domainkey.<domain>``."""
    return f"{selector}._domainkey.{domain}"


def record_value(public_key: str) -> str:
    """The TXT record value that publishes ``public_key``."""
    return f"v=DKIM1; k=rsa; p={public_key}"


def _associated(org_id: uuid.UUID, domain: str) -> bytes:
    return f"dkim:{org_id}:{domain}".encode()


def seal(box: SecretBox, org_id: uuid.UUID, domain: str, private_pem: str) -> str:
    """Encrypt a private key for the ``dkim_keys`` row of ``org_id`` and ``domain``."""
    return box.encrypt(private_pem, associated_data=_associated(org_id, domain))


def unseal(box: SecretBox, org_id: uuid.UUID, domain: str, token: str) -> str:
    """Open a private key sealed by :func:`seal`.

    Raises:
        libs.crypto.SecretBoxError: tampered with, or sealed for another organization or domain.
    """
    return box.decrypt(token, associated_data=_associated(org_id, domain))


def sign(message: bytes, domain: str, selector: str, private_key: str | bytes) -> bytes:
    """Return ``message`` with a DKIM-Signature header on top (rsa-sha256, relaxed/relaxed, ``d=domain``).

    Only the headers of :data:`SIGNED_HEADERS` the message has are signed.
    """
    head = message.split(b"\r\n\r\n", 1)[0]
    present = {name.lower() for name in _HEADER_NAME.findall(head)}
    headers = [name.encode("ascii") for name in SIGNED_HEADERS if name.lower().encode("ascii") in present]
    key = private_key.encode("ascii") if isinstance(private_key, str) else private_key
    signature = dkim.sign(
        message,
        selector.encode("ascii"),
        domain.encode("ascii"),
        key,
        canonicalize=(b"relaxed", b"relaxed"),
        include_headers=headers,
    )
    return bytes(signature) + message
