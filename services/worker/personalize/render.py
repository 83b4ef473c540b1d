"""Templates and the deterministic local writer: what goes out when no model writes the message."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jinja2 import TemplateError
from jinja2.sandbox import SandboxedEnvironment

_ENV = SandboxedEnvironment(autoescape=False, keep_trailing_newline=False)

LOCAL_MODEL = "local-template-writer-v1"
"""How the audit trail labels messages written by code, not by a model."""


def template_context(lead: Mapping[str, Any], brand: Mapping[str, Any], sender_name: str | None) -> dict[str, Any]:
    """The variables a step template may use."""
    first = (lead.get("first_name") or "").strip()
    last = (lead.get("last_name") or "").strip()
    return {
        "first_name": first or "there",
        "last_name": last,
        "full_name": " ".join(p for p in (first, last) if p) or "there",
        "company": (lead.get("company") or "").strip() or "your team",
        "title": (lead.get("title") or "").strip(),
        "custom": dict(lead.get("custom_fields") or {}),
        "brand_name": brand.get("name") or "",
        "sender_name": sender_name or brand.get("name") or "",
        "website": brand.get("website") or "",
    }


def render(template: str | None, context: Mapping[str, Any]) -> str:
    """Render one template in the sandbox; a broken template renders as its literal text."""
    if not template:
        return ""
    try:
        return _ENV.from_string(template).render(**context).strip()
    except TemplateError:
        return template.strip()


def default_copy(channel: str, context: Mapping[str, Any], value_proposition: str | None) -> dict[str, str]:
    """What the local writer says when a step has no template for its channel."""
    pitch = (value_proposition or "").strip()
    hello = f"Hi {context['first_name']},"
    who = f"this is {context['sender_name']}" if context["sender_name"] else "a quick note"
    if channel == "email":
        body = f"{hello}\n\n{pitch or 'I wanted to reach out briefly.'}\n\nWould a short call next week be useful?"
        return {"subject": f"A quick idea for {context['company']}", "body": body}
    if channel == "sms":
        return {"text": f"{hello} {who}. {pitch} Open to a quick chat?".replace("  ", " ").strip()}
    return {"script": f"{hello} {who}. {pitch} Call me back when you have a moment. Thanks!".replace("  ", " ")}


def local_write(
    channel: str, templates: Mapping[str, str | None], context: Mapping[str, Any], value_proposition: str | None
) -> dict[str, str]:
    """Fill the step's templates deterministically (no model involved)."""
    fallback = default_copy(channel, context, value_proposition)
    if channel == "email":
        return {
            "subject": render(templates.get("subject"), context) or fallback["subject"],
            "body": render(templates.get("body"), context) or fallback["body"],
        }
    if channel == "sms":
        return {"text": render(templates.get("sms"), context) or fallback["text"]}
    return {"script": render(templates.get("script"), context) or fallback["script"]}
