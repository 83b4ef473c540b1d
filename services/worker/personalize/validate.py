"""Checks every generated message must pass before it may be sent."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

SUBJECT_MAX = 120
SMS_MAX = 320
VOICEMAIL_MAX_WORDS = 150
BODY_MAX = 5000

_PLACEHOLDER = re.compile(
    r"\{\{|\}\}|\{%|%\}|\{\s*[A-Za-z_][\w.]*\s*\}|\[\s*(?:first|last|company|name|title)[\w ]*\]", re.I
)
_URL = re.compile(
    r"(?:https?://|www\.)[^\s<>\"')\]]+|\b(?:[a-z0-9-]+\.)+(?:com|net|org|io|co|ai|app|dev|biz|info|us|uk|ly)\b(?:/[^\s<>\"')\]]*)?",
    re.I,
)


class InvalidOutput(ValueError):
    """A generated message broke a rule; ``reason`` is a stable code."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def _host(url: str) -> str:
    if not re.match(r"https?://", url, re.I):
        url = "http://" + url
    return (urlsplit(url).hostname or "").lower().removeprefix("www.")


def brand_domain(website: str | None) -> str | None:
    """The registrable host of the brand's website, the only place links may point."""
    return _host(website) or None if website else None


def check_text(text: str, *, field: str, allowed_domain: str | None, forbidden_claims: Iterable[str]) -> None:
    """Raise :class:`InvalidOutput` if ``text`` has placeholders, foreign links or forbidden claims."""
    if not text or not text.strip():
        raise InvalidOutput("empty", field)
    if "\x00" in text:
        raise InvalidOutput("control_characters", field)
    if _PLACEHOLDER.search(text):
        raise InvalidOutput("placeholder_left", field)
    for match in _URL.finditer(text):
        host = _host(match.group(0).rstrip(".,;:!?"))
        if not allowed_domain or not (host == allowed_domain or host.endswith("." + allowed_domain)):
            raise InvalidOutput("foreign_link", f"{field}: {host}")
    lowered = text.lower()
    for claim in forbidden_claims:
        if claim and claim.strip() and claim.strip().lower() in lowered:
            raise InvalidOutput("forbidden_claim", f"{field}: {claim.strip()}")


def check_output(
    channel: str, output: Mapping[str, object], *, allowed_domain: str | None, forbidden_claims: Iterable[str]
) -> dict[str, str]:
    """Validate one channel's output and return it cleaned; raise :class:`InvalidOutput` otherwise."""
    claims = list(forbidden_claims)
    if channel == "email":
        subject, body = output.get("subject"), output.get("body")
        if not isinstance(subject, str) or not isinstance(body, str):
            raise InvalidOutput("schema", "email needs subject and body strings")
        subject = subject.strip()
        if len(subject) > SUBJECT_MAX:
            raise InvalidOutput("subject_too_long", str(len(subject)))
        if any(c in subject for c in "\r\n\x00"):
            raise InvalidOutput("subject_line_break")
        if len(body) > BODY_MAX:
            raise InvalidOutput("body_too_long", str(len(body)))
        check_text(subject, field="subject", allowed_domain=allowed_domain, forbidden_claims=claims)
        check_text(body, field="body", allowed_domain=allowed_domain, forbidden_claims=claims)
        return {"subject": subject, "body": body.strip()}
    if channel == "sms":
        text = output.get("text")
        if not isinstance(text, str):
            raise InvalidOutput("schema", "sms needs text")
        text = text.strip()
        if len(text) > SMS_MAX:
            raise InvalidOutput("sms_too_long", str(len(text)))
        check_text(text, field="text", allowed_domain=allowed_domain, forbidden_claims=claims)
        return {"text": text}
    script = output.get("script")
    if not isinstance(script, str):
        raise InvalidOutput("schema", "voicemail needs script")
    script = script.strip()
    if len(script.split()) > VOICEMAIL_MAX_WORDS:
        raise InvalidOutput("voicemail_too_long", str(len(script.split())))
    check_text(script, field="script", allowed_domain=allowed_domain, forbidden_claims=claims)
    return {"script": script}
