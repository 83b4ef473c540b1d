"""Checks every generated message must pass before it may be sent."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from libs.message_rules import BODY_MAX, SUBJECT_MAX, brand_domain, breaches

__all__ = ["BODY_MAX", "SUBJECT_MAX", "InvalidOutput", "brand_domain", "check_output", "check_text"]

SMS_MAX = 320
VOICEMAIL_MAX_WORDS = 150


class InvalidOutput(ValueError):
    """A generated message broke a rule; ``reason`` is a stable code."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def check_text(text: str, *, field: str, allowed_domain: str | None, forbidden_claims: Iterable[str]) -> None:
    """Raise :class:`InvalidOutput` for the first rule of ``libs.message_rules`` that ``text`` breaks."""
    for breach in breaches(text, allowed_domain=allowed_domain, forbidden_claims=forbidden_claims):
        raise InvalidOutput(breach.reason, f"{field}: {breach.detail}" if breach.detail else field)


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
