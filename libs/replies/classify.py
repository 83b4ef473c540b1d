"""The entry: opt-out words first, then OpenAI when the organization has a key, else the local classifier.

Opt-out words (:mod:`libs.optout`) always win: a reply that says STOP, "remove me" or "stop
texting me" is ``unsubscribe`` before any model sees it. Everything else goes to the model when
a key is given, and to the local rules otherwise or when the model fails; the result says which
(``source``) and why (``fallback_reason``), and :class:`Classified` carries the audit figures
:func:`libs.replies.record.record_classification` stores.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from libs import optout
from libs.replies.intents import Intent, ReplyClassification, ReplyFields
from libs.replies.local import LOCAL_MODEL, RULES_VERSION, classify_local, language
from libs.replies.openai_classifier import Usage, classify_openai, make_client
from libs.replies.text import new_text

if TYPE_CHECKING:
    import openai

OPT_OUT_MODEL = "libs.optout"


class ClassifierSettings(BaseSettings):
    """The OpenAI settings, read from the same ``SDR_OPENAI_*`` variables the worker's writer reads."""

    model_config = SettingsConfigDict(env_prefix="SDR_", env_file=".env", extra="ignore")

    openai_timeout: float = Field(default=20.0, gt=0, description="HTTP timeout of one OpenAI request.")
    openai_max_retries: int = Field(default=1, ge=0, le=3)
    openai_base_url: str | None = Field(default=None, description="OpenAI-compatible endpoint (tests, gateways).")
    openai_model: str = "gpt-4o-mini"


@dataclass(frozen=True)
class Classified:
    """A reply's classification and the audit of how it was reached."""

    result: ReplyClassification
    usage: Usage

    @property
    def is_opt_out(self) -> bool:
        """Whether the reply asks not to be contacted again."""
        return self.result.intent is Intent.UNSUBSCRIBE


def classify_reply(
    text: str | None,
    *,
    received_at: datetime,
    channel: str = "email",
    api_key: str | None = None,
    settings: ClassifierSettings | None = None,
    client: openai.OpenAI | None = None,
) -> Classified:
    """Classify one inbound reply (an email body, quoted history and all, or an SMS text).

    ``api_key`` is the organization's decrypted OpenAI key (or pass a ready ``client``); with
    neither the local classifier decides, with no network.
    """
    started = time.monotonic()
    body = text or ""
    written = new_text(body)
    words = optout.classify(written)
    if words.is_opt_out:
        result = ReplyClassification(
            intent=Intent.UNSUBSCRIBE,
            confidence=1.0,
            source="local",
            fields=ReplyFields(language=language(written)),
            matched=words.matched,
        )
        return Classified(result, _local_usage(started, OPT_OUT_MODEL))
    if client is None and api_key:
        config = settings or ClassifierSettings()
        client = make_client(
            api_key,
            timeout=config.openai_timeout,
            max_retries=config.openai_max_retries,
            base_url=config.openai_base_url,
        )
    if client is not None:
        model = (settings or ClassifierSettings()).openai_model
        result, usage = classify_openai(client, body, model=model, received_at=received_at, channel=channel)
        return Classified(result, usage)
    return Classified(classify_local(body, received_at=received_at), _local_usage(started, LOCAL_MODEL))


def _local_usage(started: float, model: str) -> Usage:
    return Usage(model=model, prompt_version=RULES_VERSION, latency_ms=int((time.monotonic() - started) * 1000))


__all__ = ["Classified", "ClassifierSettings", "classify_reply"]
