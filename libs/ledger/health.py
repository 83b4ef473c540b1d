"""Sender health: the rules that pause a sender, their sliding windows, and the pause and resume statements.

A sender is paused (``senders.paused_at``) by the worker's record step in the transaction that
records the outcome which broke a rule; the worker's LOAD then picks no paused sender and the
rest of the batch from it is held (``sender_paused``). A member resumes it; for
``pause_cooldown_until`` after a resume no rule pauses it again.

The windows are the sender's last outcomes, kept in Redis (``sender:{id}:outcomes``, newest
first): losing them only restarts the count.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from pydantic_settings import BaseSettings, SettingsConfigDict
from redis import Redis


class HealthSettings(BaseSettings):
    """The health rules' thresholds (environment ``SDR_*``)."""

    model_config = SettingsConfigDict(env_prefix="SDR_", env_file=".env", extra="ignore")

    sender_pause_cooldown_seconds: int = 3600
    """After a resume, how long no rule pauses the sender again."""
    hard_bounce_window: int = 100
    """The hard-bounce rate is counted over this many last sends."""
    hard_bounce_max_rate: float = 0.05
    """More hard bounces than this share of the window pauses the sender."""


@lru_cache(maxsize=1)
def settings() -> HealthSettings:
    """The process's health settings (read once)."""
    return HealthSettings()


class Rule:
    """The names of the rules, as ``senders.paused_rule`` stores them."""

    SMTP_AUTH = "smtp_auth"
    SMTP_POLICY = "smtp_policy"
    HARD_BOUNCE_RATE = "hard_bounce_rate"
    TWILIO_AUTH = "twilio_auth"


IMMEDIATE = {
    "smtp_530": (Rule.SMTP_AUTH, "the SMTP server refused the login (530)"),
    "smtp_535": (Rule.SMTP_AUTH, "the SMTP server refused the credentials (535)"),
    "smtp_552": (Rule.SMTP_POLICY, "the SMTP server blocked the sender by policy (552)"),
    "smtp_554": (Rule.SMTP_POLICY, "the SMTP server blocked the sender by policy (554)"),
    "twilio_20003": (Rule.TWILIO_AUTH, "Twilio refused the account's credentials (20003)"),
}
"""Provider codes that pause at once: the rule and the reason."""

ORG_WIDE = frozenset({Rule.TWILIO_AUTH})
"""Rules that pause every SMS and voice sender of the organization, not only the one that sent."""


@dataclass(frozen=True, slots=True)
class Pause:
    """A rule broken by an outcome: the sender (or the organization's SMS and voice) is to be paused."""

    sender_id: uuid.UUID
    org_id: uuid.UUID
    rule: str
    reason: str

    def params(self, now: datetime) -> dict[str, Any]:
        """The parameters of :data:`PAUSE`."""
        return {
            "sid": self.sender_id,
            "org": self.org_id,
            "org_wide": self.rule in ORG_WIDE,
            "rule": self.rule,
            "reason": self.reason,
            "now": now,
        }


PAUSE = sa.text(
    """
    UPDATE senders
    SET paused_at = :now, paused_reason = CAST(:reason AS varchar), paused_rule = CAST(:rule AS varchar),
        version = version + 1, updated_at = :now
    WHERE (id = CAST(:sid AS uuid)
           OR (CAST(:org_wide AS boolean) AND org_id = CAST(:org AS uuid) AND kind IN ('sms', 'voice')))
      AND paused_at IS NULL
      AND (pause_cooldown_until IS NULL OR pause_cooldown_until <= :now)
    RETURNING id, org_id, brand_id, kind
    """
)
"""Pause a sender (or, for an organization-wide rule, the organization's SMS and voice senders) unless
it is already paused or in its cooldown after a resume; returns the senders it paused."""

RESUME = sa.text(
    """
    UPDATE senders
    SET paused_at = NULL, paused_reason = NULL, paused_rule = NULL,
        pause_cooldown_until = :cooldown_until, version = version + 1, updated_at = :now
    WHERE id = CAST(:sid AS uuid) AND paused_at IS NOT NULL
    RETURNING id
    """
)
"""A member resumes a paused sender; until ``:cooldown_until`` no rule pauses it again."""


PAUSED_EVENT = "sender.paused"
"""The customer webhook event a pause owes (payload ``data``: the sender, its brand and kind, rule, reason)."""

OWE_PAUSED = sa.text(
    """
    INSERT INTO webhook_deliveries (id, org_id, endpoint_id, event_id, event_type, payload, status, attempts,
                                    next_attempt_at, created_at, updated_at)
    SELECT gen_random_uuid(), w.org_id, w.id, CAST(:event_id AS uuid), 'sender.paused',
           CAST(:payload AS jsonb),
           'pending', 0, :now, :now, :now
    FROM webhook_endpoints w
    WHERE w.org_id = CAST(:org AS uuid) AND w.active AND w.event_types ? 'sender.paused'
    ON CONFLICT (endpoint_id, event_id) DO NOTHING
    RETURNING id
    """
)
"""Owe ``sender.paused`` to the organization's endpoints subscribed to it, in the pause's transaction
(due at once: the ticker's ``DUE_WEBHOOKS`` hands it to the delivery job)."""


def owe_paused(pause: Pause, sender: Any, now: datetime) -> dict[str, Any]:
    """The parameters of :data:`OWE_PAUSED` for one sender :data:`PAUSE` returned."""
    event_id = uuid.uuid4()
    data = {
        "sender_id": str(sender.id),
        "brand_id": str(sender.brand_id),
        "kind": sender.kind,
        "rule": pause.rule,
        "reason": pause.reason,
    }
    payload = {"id": str(event_id), "type": PAUSED_EVENT, "created_at": now.isoformat(), "data": data}
    return {"event_id": event_id, "org": sender.org_id, "payload": json.dumps(payload), "now": now}


def outcomes_key(sender_id: uuid.UUID) -> str:
    """The Redis list of a sender's last outcomes, newest first."""
    return f"sender:{sender_id}:outcomes"


def observe(redis: Redis, sender_id: uuid.UUID, outcome: str) -> list[str]:
    """Add ``outcome`` (``sent``, ``hard_bounce``, ``soft_bounce``, ``auth_error``) to the window; return it."""
    window = settings().hard_bounce_window
    key = outcomes_key(sender_id)
    pipe = redis.pipeline()
    pipe.lpush(key, outcome)
    pipe.ltrim(key, 0, window - 1)
    pipe.lrange(key, 0, window - 1)
    values = pipe.execute()[-1]
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


def hard_bounce_breach(window: list[str]) -> bool:
    """More hard bounces among the window's slots than the allowed share of a full window."""
    limit = settings().hard_bounce_max_rate * settings().hard_bounce_window
    return window.count("hard_bounce") > limit
