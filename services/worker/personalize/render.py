"""Templates and the deterministic local writer: what goes out when no model writes the message."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jinja2 import TemplateError

from libs import templating

LOCAL_MODEL = "local-template-writer-v1"
"""How the audit trail labels messages written by code, not by a model."""


def render(template: str | None, lead: Mapping[str, Any], brand: Mapping[str, Any]) -> str:
    """Render one step template (``libs.templating``); a template that cannot render gives ""."""
    if not template:
        return ""
    try:
        return templating.render(template, lead=lead, brand=brand).strip()
    except (TemplateError, TypeError, ValueError, ArithmeticError):
        return ""


def default_copy(channel: str, lead: Mapping[str, Any], brand: Mapping[str, Any], sender: str | None) -> dict[str, str]:
    """What the local writer says when a step has no usable template for its channel."""
    first = (lead.get("first_name") or "").strip() or "there"
    company = (lead.get("company") or "").strip() or "your team"
    pitch = (brand.get("value_proposition") or "").strip()
    who = sender or brand.get("name") or "our team"
    if channel == "email":
        body = f"Hi {first},\n\n{pitch or 'I wanted to reach out briefly.'}\n\nWould a short call next week be useful?"
        return {"subject": f"A quick idea for {company}", "body": body}
    if channel == "sms":
        return {"text": " ".join(f"Hi {first}, this is {who}. {pitch} Open to a quick chat?".split())}
    return {"script": " ".join(f"Hi {first}, this is {who}. {pitch} Call me back when you have a moment.".split())}


def local_write(
    channel: str,
    templates: Mapping[str, str | None],
    lead: Mapping[str, Any],
    brand: Mapping[str, Any],
    sender: str | None = None,
) -> dict[str, str]:
    """Fill the step's templates deterministically (no model involved)."""
    fallback = default_copy(channel, lead, brand, sender)
    if channel == "email":
        return {
            "subject": render(templates.get("subject"), lead, brand) or fallback["subject"],
            "body": render(templates.get("body"), lead, brand) or fallback["body"],
        }
    if channel == "sms":
        return {"text": render(templates.get("sms"), lead, brand) or fallback["text"]}
    return {"script": render(templates.get("script"), lead, brand) or fallback["script"]}
