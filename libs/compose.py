"""Message composition: a step's templates, a lead and a brand turned into what is sent, no model involved.

The one composition both the worker (``services.worker``) and the campaign service's previews use:
pure, no database or network. It renders the step's templates (subject, body, sms, script) with
their default copy, carries the brand's email signature exactly once, and appends each closing
(sign-off, opt-out wording) a text or voicemail script does not already carry.

Rendering is ``libs.templating.render`` itself (the code the campaign service validates templates
with), so every template it accepted (``{{ lead.first_name }}``, ``{{ brand.name }}``, the short
names) renders here exactly as checked. Only what to say when a step has no usable template for
its channel is the worker's own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jinja2 import TemplateError

from libs import templating

LOCAL_MODEL = "local-template-writer-v1"
"""How the audit trail labels messages written by code, not by a model."""

DEFAULT_COPY = {
    "subject": "A quick idea for {{ company }}",
    "body": "Hi {{ first_name }},\n\n{{ brand.value_proposition or 'I wanted to reach out briefly.' }}\n\n"
    "Would a short call next week be useful?",
    "sms": "Hi {{ first_name }}, this is {{ sender_name or 'our team' }}. {{ brand.value_proposition }} "
    "Open to a quick chat?",
    "script": "Hi {{ first_name }}, this is {{ sender_name or 'our team' }}. {{ brand.value_proposition }} "
    "Call me back when you have a moment.",
}
"""What the local writer says when a step has no usable template for its channel (templates too)."""

FIELDS = {
    "email": (("subject", "subject"), ("body", "body")),
    "sms": (("text", "sms"),),
    "voicemail": (("script", "script"),),
}


def render(
    template: str | None, lead: Mapping[str, Any], brand: Mapping[str, Any], sender_name: str | None = None
) -> str:
    """Render one step template with ``libs.templating.render``; a template that cannot render gives "".

    A template over a render bound raises :class:`libs.templating.RenderLimitExceeded` instead:
    the message fails with that reason rather than going out with copy nobody wrote for it.
    """
    if not template:
        return ""
    try:
        return templating.render(template, lead=lead, brand=brand, sender_name=sender_name).strip()
    except templating.RenderLimitExceeded:
        raise
    except (TemplateError, TypeError, ValueError, ArithmeticError, LookupError, RecursionError):
        return ""


def _words(text: str) -> str:
    return " ".join(text.split())


def sign(body: str, signature: str | None) -> str:
    """Return ``body`` carrying the brand's email signature exactly once.

    The signature is appended after a blank line unless the body already contains it (the
    template placed ``{{ brand.email_signature }}`` itself, or the model kept it); the
    comparison ignores how lines and spaces were wrapped.
    """
    signature = (signature or "").replace("\r\n", "\n").strip()
    if not signature or _words(signature) in _words(body):
        return body
    return f"{body.rstrip()}\n\n{signature}" if body.strip() else signature


def local_write(
    channel: str,
    templates: Mapping[str, str | None],
    lead: Mapping[str, Any],
    brand: Mapping[str, Any],
    sender: str | None = None,
) -> dict[str, str]:
    """Fill the step's templates deterministically, each falling back to the default copy."""
    out: dict[str, str] = {}
    for name, template in FIELDS[channel]:
        text = render(templates.get(template), lead, brand, sender)
        if not text:
            text = render(DEFAULT_COPY[template], lead, brand, sender)
            text = text if channel == "email" else " ".join(text.split())
        out[name] = text
    return out


def with_closing(text: str, *closings: str | None) -> str:
    """Append each closing (sign-off, the brand's opt-out wording) the text does not already carry.

    The opt-out wording is added by code, never left to the writer: every text and voicemail
    tells the recipient how to stop them (TCPA, CTIA; RELIABILITY C10).
    """
    for closing in closings:
        closing = (closing or "").strip()
        if closing and closing.casefold() not in text.casefold():
            text = f"{text.rstrip()} {closing}".strip()
    return text


def sms_text(body: str, sms_signoff: str | None, opt_out: str | None) -> str:
    """The text an SMS carries: the written body, then the sign-off and the opt-out wording it lacks."""
    return with_closing(body, sms_signoff, opt_out)


def voicemail_script(script: str, opt_out: str | None) -> str:
    """The script a voicemail drop speaks: the written script, then the opt-out wording it lacks."""
    return with_closing(script, opt_out)
