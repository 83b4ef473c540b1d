"""Twilio webhook authentication: the public URL Twilio called, and its ``X-Twilio-Signature``.

The signature is HMAC-SHA1 (key: the account's Auth Token) over the full URL Twilio called
plus the POST parameters sorted by name; it has no timestamp, so replays are stopped by
deduplication, not here. The URL is rebuilt from ``SDR_PUBLIC_BASE_URL`` when set, else from
the ``X-Forwarded-Proto`` / ``X-Forwarded-Host`` headers the gateway sets itself (it drops
any a client sent), else from the request as this service received it; the path and query
are taken raw, exactly as they came (percent-encoding kept).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from urllib.parse import parse_qsl

from twilio.request_validator import SIGNATURE_SETTINGS_HEADER, RequestValidator, get_signature_algorithm

from libs.crypto import SecretBox, SecretBoxError
from services.campaign.inbound.rows import CredentialRow

SIGNATURE_HEADER = "x-twilio-signature"
IDEMPOTENCY_HEADER = "i-twilio-idempotency-token"


class FormParams(dict[str, list[str]]):
    """Form parameters with every value kept; ``getall`` is what ``RequestValidator`` reads."""

    def getall(self, name: str) -> list[str]:
        """Every value of ``name``."""
        return self[name]

    def first(self, name: str) -> str | None:
        """The first value of ``name``, or ``None``."""
        values = self.get(name)
        return values[0] if values else None

    def flat(self) -> dict[str, str | list[str]]:
        """JSON-friendly form: single values as strings."""
        return {k: v[0] if len(v) == 1 else list(v) for k, v in self.items()}


def parse_form(body: bytes) -> FormParams:
    """Parse an ``application/x-www-form-urlencoded`` body, keeping blanks and repeats."""
    params = FormParams()
    for name, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
        params.setdefault(name, []).append(value)
    return params


def public_url(
    *,
    headers: Mapping[str, str],
    scheme: str,
    host: str | None,
    raw_path: str,
    query_string: str,
    base_url: str | None,
) -> str:
    """Return the URL Twilio called, rebuilt from the setting, the gateway's headers, or the request."""
    # ASGI's raw_path excludes the query, but some servers (and test transports) include it.
    path = raw_path.partition("?")[0]
    suffix = path + (f"?{query_string}" if query_string else "")
    if base_url:
        return base_url.rstrip("/") + suffix
    proto = headers.get("x-forwarded-proto") or scheme
    forwarded_host = headers.get("x-forwarded-host") or host or ""
    return f"{proto.split(',')[0].strip()}://{forwarded_host.split(',')[0].strip()}{suffix}"


def signature_valid(
    *, auth_token: str, url: str, params: FormParams, signature: str, settings_header: str | None = None
) -> bool:
    """Check ``signature`` with twilio's own validator (constant-time, with and without the port)."""
    if not signature or not auth_token:
        return False
    algorithm = get_signature_algorithm(settings_header)
    return bool(RequestValidator(auth_token).validate(url, params, signature, algorithm=algorithm))


def find_signing_org(
    credentials: Sequence[CredentialRow],
    *,
    box: SecretBox,
    url: str,
    params: FormParams,
    signature: str,
    settings_header: str | None = None,
) -> uuid.UUID | None:
    """Return the ``org_id`` whose stored Auth Token signed the request, or ``None``."""
    for row in credentials:
        try:
            token = box.decrypt(row.secret_encrypted)
        except SecretBoxError:
            continue
        if signature_valid(
            auth_token=token, url=url, params=params, signature=signature, settings_header=settings_header
        ):
            return row.org_id
    return None


__all__ = [
    "IDEMPOTENCY_HEADER",
    "SIGNATURE_HEADER",
    "SIGNATURE_SETTINGS_HEADER",
    "FormParams",
    "find_signing_org",
    "parse_form",
    "public_url",
    "signature_valid",
]
