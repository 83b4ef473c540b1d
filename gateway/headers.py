"""Security headers the gateway adds to every answer it sends, proxied or its own.

Only what a response does not already say is added, so a service or page with a stricter (or
deliberately different) value keeps it:

- ``X-Content-Type-Options: nosniff`` and a ``Permissions-Policy`` denying powerful browser
  features (camera, microphone, geolocation, payment, ...) on every answer;
- ``Referrer-Policy: strict-origin`` (never a path; the origin is what the operator pages'
  same-origin checks read, so ``no-referrer`` would make a browser send ``Origin: null``);
- no framing: ``X-Frame-Options: DENY`` and ``frame-ancestors 'none'`` (appended to the
  answer's own ``Content-Security-Policy`` when it has one without ``frame-ancestors``);
- ``Cache-Control: no-store`` on JSON answers (problems included) and on every other answer
  under ``/api/`` except the docs' static files, which keep their own caching headers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

Headers = list[tuple[bytes, bytes]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

PERMISSIONS_POLICY = (
    b"accelerometer=(), autoplay=(), camera=(), display-capture=(), encrypted-media=(), fullscreen=(), "
    b"geolocation=(), gyroscope=(), hid=(), magnetometer=(), microphone=(), midi=(), payment=(), "
    b"picture-in-picture=(), publickey-credentials-get=(), screen-wake-lock=(), serial=(), usb=(), "
    b"xr-spatial-tracking=()"
)
"""Every powerful feature denied: no page of the gateway or the services needs one."""
REFERRER_POLICY = b"strict-origin"
NO_FRAMES = b"frame-ancestors 'none'"
NO_STORE = b"no-store"
DOCS_PREFIX = "/api/docs"
"""Swagger UI's page, script and static files: cacheable (their answers set what they need)."""

_FIXED: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"permissions-policy", PERMISSIONS_POLICY),
    (b"referrer-policy", REFERRER_POLICY),
    (b"x-frame-options", b"DENY"),
)


def _is_json(content_type: bytes) -> bool:
    media = content_type.split(b";", 1)[0].strip().lower()
    return media == b"application/json" or media.endswith(b"+json")


def secure_headers(path: str, headers: Any) -> Headers:
    """Return ``headers`` (an answer's, for a request of ``path``) with the missing security headers added."""
    out: Headers = list(headers)
    present: set[bytes] = set()
    content_type = b""
    csp_at: list[int] = []
    for index, (name, value) in enumerate(out):
        lower = name.lower()
        present.add(lower)
        if lower == b"content-type":
            content_type = value
        elif lower == b"content-security-policy":
            csp_at.append(index)
    for name, value in _FIXED:
        if name not in present:
            out.append((name, value))
    if not csp_at:
        out.append((b"content-security-policy", NO_FRAMES))
    elif not any(b"frame-ancestors" in out[i][1].lower() for i in csp_at):
        name, value = out[csp_at[0]]
        out[csp_at[0]] = (name, value.rstrip().rstrip(b";") + b"; " + NO_FRAMES)
    if b"cache-control" not in present and (
        _is_json(content_type)
        or (
            path.startswith("/api/")
            and not path.startswith(DOCS_PREFIX)
            and not content_type.startswith(b"text/event-stream")
        )
    ):
        out.append((b"cache-control", NO_STORE))
    return out


def with_security_headers(path: str, send: Send) -> Send:
    """Wrap ``send`` so the response head for ``path`` carries the security headers."""

    async def send_secured(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": secure_headers(path, message.get("headers") or ())}
        await send(message)

    return send_secured
