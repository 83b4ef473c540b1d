"""Step templates: sandboxed Jinja2 with lead and brand variables, checked when saved.

The campaign service validates templates with :func:`check_template` when a step is saved; the
worker renders them with :func:`render` and picks A/B variants with :func:`choose_variant`, so
what was accepted is exactly what renders. Templates see ``lead`` (its fields, and
``lead.custom.<name>`` for custom fields), ``brand``, and the short names of ``FLAT_NAMES``.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateError, TemplateSyntaxError, nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

LEAD_FIELDS = frozenset(
    {"first_name", "last_name", "full_name", "email", "phone", "company", "title", "timezone", "custom"}
)
BRAND_FIELDS = frozenset(
    {
        "name",
        "website",
        "description",
        "value_proposition",
        "target_audience",
        "tone_of_voice",
        "email_signature",
        "sms_signoff",
        "postal_address",
    }
)
VARIABLES: Mapping[str, frozenset[str]] = {"lead": LEAD_FIELDS, "brand": BRAND_FIELDS}
FLAT_NAMES = frozenset(
    {"first_name", "last_name", "full_name", "company", "title", "custom", "brand_name", "sender_name", "website"}
)
"""Short names the worker's local writer has always offered (``{{ first_name }}``); still accepted."""
MAX_OUTPUT_CHARS = 100_000


@dataclass(frozen=True, slots=True)
class TemplateProblem:
    """Why a template was refused, in words a user can act on."""

    message: str
    line: int | None = None

    def __str__(self) -> str:
        return f"{self.message} (line {self.line})" if self.line else self.message


class _AnyCustom(dict[str, str]):
    """Custom fields at validation time: any name is allowed, each renders as a sample."""

    def __missing__(self, key: str) -> str:
        return f"<{key}>"


class _BoundedEnvironment(SandboxedEnvironment):
    """A sandbox that also refuses arithmetic building huge strings, lists or numbers."""

    intercepted_binops = frozenset({"*", "**", "+"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, int | float) and abs(right) > 100:
            raise SecurityError("exponent too large")
        if operator == "*":
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(n, int) and len(seq) * n > MAX_OUTPUT_CHARS:
                    raise SecurityError("repetition too large")
        result = super().call_binop(context, operator, left, right)
        if isinstance(result, str | list | tuple) and len(result) > MAX_OUTPUT_CHARS:
            raise SecurityError("result too large")
        return result


def environment() -> SandboxedEnvironment:
    """Return the sandboxed environment every template is compiled in (no autoescape: plain text)."""
    return _BoundedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)


_ENV = environment()
_BUILTIN_NAMES = frozenset(_ENV.globals) | {"loop", "caller", "varargs", "kwargs", "super"}


def _variables(ast: nodes.Template) -> list[TemplateProblem]:
    problems: list[TemplateProblem] = []
    assigned = {n.name for n in ast.find_all(nodes.Name) if n.ctx in ("store", "param")}
    assigned |= _BUILTIN_NAMES
    for name in ast.find_all(nodes.Name):
        if name.ctx == "load" and name.name not in VARIABLES and name.name not in FLAT_NAMES | assigned:
            problems.append(
                TemplateProblem(
                    f"unknown variable '{name.name}' (use lead.* or brand.*)", getattr(name, "lineno", None)
                )
            )
    for attr in ast.find_all(nodes.Getattr):
        if isinstance(attr.node, nodes.Name) and attr.node.name in VARIABLES and attr.node.name not in assigned:
            allowed = VARIABLES[attr.node.name]
            if attr.attr not in allowed:
                problems.append(
                    TemplateProblem(
                        f"unknown variable '{attr.node.name}.{attr.attr}'; known: {', '.join(sorted(allowed))}",
                        getattr(attr, "lineno", None),
                    )
                )
    for item in ast.find_all(nodes.Getitem):
        if isinstance(item.node, nodes.Name) and item.node.name in VARIABLES and isinstance(item.arg, nodes.Const):
            allowed = VARIABLES[item.node.name]
            if item.arg.value not in allowed:
                problems.append(
                    TemplateProblem(f"unknown variable '{item.node.name}[{item.arg.value!r}]'", item.lineno)
                )
    return problems


def sample_context() -> dict[str, Any]:
    """A context with every known variable set, used to trial-render templates."""
    lead: dict[str, Any] = {f: f"<lead.{f}>" for f in LEAD_FIELDS}
    lead["custom"] = _AnyCustom()
    flat: dict[str, Any] = {f: f"<{f}>" for f in FLAT_NAMES}
    flat["custom"] = lead["custom"]
    return {**flat, "lead": lead, "brand": {f: f"<brand.{f}>" for f in BRAND_FIELDS}}


def check_template(source: str) -> TemplateProblem | None:
    """Return why ``source`` is not a valid step template, or None when it is."""
    try:
        ast = _ENV.parse(source)
    except TemplateSyntaxError as exc:
        return TemplateProblem(f"syntax error: {exc.message}", exc.lineno)
    problems = _variables(ast)
    if problems:
        return problems[0]
    try:
        _ENV.from_string(source).render(sample_context())
    except TemplateError as exc:  # unknown filters or tests, sandbox violations, strict undefined
        return TemplateProblem(str(exc.message or exc))
    except (TypeError, ValueError, ArithmeticError) as exc:
        return TemplateProblem(f"cannot render: {exc}")
    return None


def lead_context(lead: Mapping[str, Any]) -> dict[str, Any]:
    """The ``lead`` object a template sees, built from a lead row's columns."""
    ctx = {f: lead.get(f) or "" for f in LEAD_FIELDS if f not in ("custom", "full_name")}
    ctx["full_name"] = " ".join(p for p in (lead.get("first_name"), lead.get("last_name")) if p)
    ctx["custom"] = dict(lead.get("custom_fields") or {})
    return ctx


def brand_context(brand: Mapping[str, Any]) -> dict[str, Any]:
    """The ``brand`` object a template sees, built from a brand row's columns."""
    return {f: brand.get(f) or "" for f in BRAND_FIELDS}


def template_context(
    lead: Mapping[str, Any], brand: Mapping[str, Any], sender_name: str | None = None
) -> dict[str, Any]:
    """Every variable a step template may use: ``lead``, ``brand`` and the short names."""
    lead_ctx, brand_ctx = lead_context(lead), brand_context(brand)
    first = str(lead_ctx["first_name"]).strip()
    return {
        "first_name": first or "there",
        "last_name": lead_ctx["last_name"],
        "full_name": lead_ctx["full_name"] or "there",
        "company": str(lead_ctx["company"]).strip() or "your team",
        "title": lead_ctx["title"],
        "custom": lead_ctx["custom"],
        "brand_name": brand_ctx["name"],
        "sender_name": sender_name or brand_ctx["name"],
        "website": brand_ctx["website"],
        "lead": lead_ctx,
        "brand": brand_ctx,
    }


@lru_cache(maxsize=512)
def _compiled(source: str) -> Template:
    # Compiling costs far more than rendering; a worker renders the same few step templates for every lead.
    return _ENV.from_string(source)


def render(source: str, *, lead: Mapping[str, Any], brand: Mapping[str, Any], sender_name: str | None = None) -> str:
    """Render a step template for one lead; raise ``jinja2.TemplateError`` when it cannot be."""
    out = _compiled(source).render(template_context(lead, brand, sender_name))
    return out[:MAX_OUTPUT_CHARS]


def choose_variant(
    enrollment_id: uuid.UUID | str, step_id: uuid.UUID | str, variants: Sequence[Mapping[str, Any]]
) -> Mapping[str, Any] | None:
    """Pick a step's A/B variant for an enrollment: weighted, deterministic, stable across processes."""
    weighted = [v for v in variants if int(v.get("weight", 0)) > 0]
    if not weighted:
        return None
    total = sum(int(v["weight"]) for v in weighted)
    digest = hashlib.sha256(f"{enrollment_id}:{step_id}".encode()).digest()
    point = int.from_bytes(digest[:8], "big") % total
    for variant in weighted:
        point -= int(variant["weight"])
        if point < 0:
            return variant
    return weighted[-1]  # unreachable


__all__ = [
    "BRAND_FIELDS",
    "LEAD_FIELDS",
    "TemplateProblem",
    "brand_context",
    "check_template",
    "choose_variant",
    "environment",
    "lead_context",
    "render",
    "sample_context",
    "template_context",
]
