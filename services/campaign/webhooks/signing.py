"""Customer webhooks: the signature recipe, the SSRF guard, and one HTTP attempt.

Signature (the Stripe / Standard Webhooks shape). Each request carries::

    Tidewater-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, f"{t}.{raw body}")>
    Tidewater-Event: <event type>
    Tidewater-Delivery: <delivery id>     (the same on every retry: dedupe on it)

To verify: split the header on ``,``, take ``t`` and every ``v1``; compute
``hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()`` over the
raw body bytes (never a re-serialised JSON); accept if it equals one ``v1`` (constant-time
compare) and ``t`` is within five minutes of now. ``secret`` is the ``whsec_...`` string shown
once when the endpoint was created.

SSRF: a URL must be http(s), carry no credentials, and every address its host resolves to
must be public by ``libs.netpolicy`` (not private, loopback, link-local, multicast, reserved,
unspecified, carrier-grade NAT, or an IPv4-mapped/compatible, NAT64, 6to4 or Teredo form of
those); checked when the endpoint is saved and again before
each attempt, and the attempt connects to the very address that was checked (no DNS
rebinding), with redirects not followed. ``SDR_WEBHOOKS_ALLOW_PRIVATE`` lifts the address
rule; unset, it is on outside production (a receiver on the developer's own machine) and off
in production.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import httpx

from libs import netpolicy

SIGNATURE_HEADER = "Tidewater-Signature"
EVENT_HEADER = "Tidewater-Event"
DELIVERY_HEADER = "Tidewater-Delivery"
SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret
TOLERANCE_SECONDS = 300


class UnsafeUrl(ValueError):
    """The URL may not be called: bad scheme, credentials, or a non-public address."""


def new_secret() -> str:
    """Return a fresh endpoint secret (shown to the customer once)."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """Return the ``Tidewater-Signature`` header value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(
    secret: str, header: str, body: bytes, *, now: float | None = None, tolerance: int = TOLERANCE_SECONDS
) -> bool:
    """Verify a ``Tidewater-Signature`` header the way a receiver should (the documented recipe)."""
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, c) for c in candidates)


@dataclass(frozen=True, slots=True)
class Target:
    """A checked URL and the address to connect to."""

    url: str
    host: str
    address: str
    port: int


def check_url(url: str, *, allow_private: bool, resolve: bool = True) -> Target:
    """Return where ``url`` may be called, or raise :class:`UnsafeUrl` saying why not."""
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise UnsafeUrl("The URL is not valid.") from exc
    if parts.scheme not in ("http", "https"):
        raise UnsafeUrl("Only http and https URLs are allowed.")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise UnsafeUrl("The URL may not carry credentials.")
    host = parts.hostname
    if not host:
        raise UnsafeUrl("The URL has no host.")
    if not resolve:
        return Target(url=url, host=host, address=host, port=port)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise UnsafeUrl("The host does not resolve.") from exc
    addresses = [netpolicy.parse(str(info[4][0])) for info in infos]
    if not addresses:
        raise UnsafeUrl("The host does not resolve.")
    if not allow_private:
        for address in addresses:
            why = netpolicy.refusal(address)
            if why is not None:
                raise UnsafeUrl(f"The URL resolves to an address that is not public ({why}).")
    return Target(url=url, host=host, address=str(addresses[0]), port=port)


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """What one HTTP attempt came to."""

    ok: bool
    status_code: int | None
    error: str | None
    excerpt: str | None
    duration_ms: int


def post(target: Target, *, body: bytes, headers: dict[str, str], timeout: float) -> AttemptResult:
    """POST ``body`` to the checked address of ``target`` (Host and TLS name kept); 2xx is success."""
    parts = urlsplit(target.url)
    literal = f"[{target.address}]" if ":" in target.address else target.address
    netloc = f"{literal}:{target.port}"
    pinned = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
    host_header = parts.netloc
    started = time.perf_counter()
    try:
        with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False) as client:
            response = client.post(
                pinned,
                content=body,
                headers={**headers, "Host": host_header},
                extensions={"sni_hostname": target.host} if parts.scheme == "https" else {},
            )
            excerpt = response.text[:500]
    except httpx.HTTPError as exc:
        return AttemptResult(False, None, f"{type(exc).__name__}: {exc}"[:500], None, _ms(started))
    ok = 200 <= response.status_code < 300
    return AttemptResult(
        ok, response.status_code, None if ok else f"HTTP {response.status_code}", excerpt, _ms(started)
    )


def _ms(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)
