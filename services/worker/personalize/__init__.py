"""Personalization: a model writes each message from the brand, the step and the lead, checked before use."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog

from libs.compose import LOCAL_MODEL, local_write, sign
from services.worker.personalize.prompt import PROMPT_VERSION, build_messages, lead_data, response_format
from services.worker.personalize.validate import InvalidOutput, brand_domain, check_output

if TYPE_CHECKING:
    import openai

log = structlog.get_logger(__name__)

# US dollars per million tokens (input, output); unknown models are costed at zero.
PRICES = {"gpt-4o-mini": (0.15, 0.60), "gpt-4o": (2.50, 10.00), "gpt-4.1-mini": (0.40, 1.60), "gpt-4.1": (2.00, 8.00)}


@dataclass
class Draft:
    """A personalized message and its audit trail."""

    channel: str
    content: dict[str, str]
    source: str  # "openai" | "local" | "fallback"
    model: str
    prompt_version: str = PROMPT_VERSION
    prompt: list[dict[str, str]] = field(default_factory=list)
    input: dict[str, Any] = field(default_factory=dict)
    output: dict[str, Any] | None = None
    fallback_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    latency_ms: int = 0

    @property
    def subject(self) -> str | None:
        """The email subject, if any."""
        return self.content.get("subject")

    @property
    def body(self) -> str:
        """The text that goes out: email body, SMS text or voicemail script."""
        return self.content.get("body") or self.content.get("text") or self.content.get("script") or ""


@dataclass(frozen=True)
class Request:
    """What one message is written from."""

    channel: str
    brand: Mapping[str, Any]
    lead: Mapping[str, Any]
    templates: Mapping[str, str | None]
    instructions: str | None = None
    sender_name: str | None = None
    opt_out: str | None = None
    model: str | None = None


class Personalizer:
    """Write messages with OpenAI when a key is configured, else with the local writer; always validated."""

    def __init__(self, client: openai.OpenAI | None, *, model: str) -> None:
        self.client = client
        self.model = model

    def write(self, request: Request) -> Draft:
        """Write one message; on any model failure fall back to the rendered template and say why.

        An email's body always ends up carrying the brand's signature exactly once, whoever
        wrote it (:func:`~libs.compose.sign`); the channel adds none.
        """
        draft = self._write(request)
        if request.channel == "email" and "body" in draft.content:
            signature = request.brand.get("email_signature")
            draft.content = {**draft.content, "body": sign(draft.content["body"], signature)}
        return draft

    def _write(self, request: Request) -> Draft:
        rendered = local_write(request.channel, request.templates, request.lead, request.brand, request.sender_name)
        domain = brand_domain(request.brand.get("website"))
        claims = list(request.brand.get("forbidden_claims") or [])
        if self.client is None:
            return Draft(request.channel, rendered, "local", LOCAL_MODEL, input=lead_data(request.lead))
        model = request.model or self.model
        messages = build_messages(
            channel=request.channel,
            brand=request.brand,
            instructions=request.instructions,
            draft=rendered,
            lead=request.lead,
            opt_out=request.opt_out,
        )
        draft = Draft(request.channel, rendered, "fallback", model, prompt=messages, input=lead_data(request.lead))
        import openai  # imported on first use: a worker without OpenAI keys never pays for it

        started = time.monotonic()
        try:
            completion = self.client.chat.completions.create(  # type: ignore[call-overload]
                model=model,
                messages=messages,
                response_format=response_format(request.channel),
                temperature=0.4,
            )
        except openai.APITimeoutError:
            return self._fallback(draft, "openai_timeout", started)
        except openai.RateLimitError:
            return self._fallback(draft, "openai_rate_limited", started)
        except openai.APIStatusError as exc:
            return self._fallback(draft, f"openai_http_{exc.status_code}", started)
        except (openai.APIError, ValueError) as exc:
            return self._fallback(draft, f"openai_error:{type(exc).__name__}", started)
        draft.latency_ms = int((time.monotonic() - started) * 1000)
        usage = completion.usage
        if usage is not None:
            draft.prompt_tokens, draft.completion_tokens = usage.prompt_tokens, usage.completion_tokens
            price_in, price_out = PRICES.get(model, (0.0, 0.0))
            draft.cost_usd = round((usage.prompt_tokens * price_in + usage.completion_tokens * price_out) / 1e6, 6)
        choice = completion.choices[0] if completion.choices else None
        if choice is None or choice.message is None:
            return self._fallback(draft, "openai_empty", started, timed=False)
        if choice.finish_reason == "length":
            return self._fallback(draft, "openai_truncated", started, timed=False)
        if getattr(choice.message, "refusal", None):
            return self._fallback(draft, "openai_refused", started, timed=False)
        raw = choice.message.content or ""
        try:
            parsed = json.loads(raw)
        except json.JSONDecodeError:
            draft.output = {"raw": raw[:4000]}
            return self._fallback(draft, "openai_invalid_json", started, timed=False)
        if not isinstance(parsed, dict):
            draft.output = {"raw": raw[:4000]}
            return self._fallback(draft, "openai_schema", started, timed=False)
        draft.output = parsed
        try:
            draft.content = check_output(request.channel, parsed, allowed_domain=domain, forbidden_claims=claims)
        except InvalidOutput as exc:
            return self._fallback(draft, f"invalid_output:{exc.reason}", started, timed=False)
        draft.source = "openai"
        return draft

    def _fallback(self, draft: Draft, reason: str, started: float, *, timed: bool = True) -> Draft:
        if timed:
            draft.latency_ms = int((time.monotonic() - started) * 1000)
        draft.source = "fallback"
        draft.fallback_reason = reason
        log.warning("personalization_fallback", reason=reason, channel=draft.channel)
        return draft


def make_openai_client(api_key: str, *, timeout: float, max_retries: int, base_url: str | None) -> openai.OpenAI:
    """An OpenAI client whose worst case (timeout x attempts) stays under the job timeout."""
    import openai

    return openai.OpenAI(api_key=api_key, base_url=base_url, timeout=timeout, max_retries=max_retries)


__all__ = ["PROMPT_VERSION", "Draft", "Personalizer", "Request", "make_openai_client"]
