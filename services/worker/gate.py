"""The compliance gate: may this message go out now, later (and when), or never?

Pure decisions on facts read at dequeue time. A message that may go later is *held* with the
earliest allowed instant and a reason; it is never failed or dropped for timing. A message that
must never go (suppressed, no consent, campaign over) is *skipped* with its reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from libs.compliance_hours import Recipient, allowance
from libs.compliance_hours import Verdict as HoursVerdict
from libs.db.base import utcnow

PAUSED_RECHECK = timedelta(minutes=15)
"""How often a message of a paused campaign or enrollment is looked at again."""


class Verdict(StrEnum):
    """What the gate decided."""

    SEND = "send"
    HOLD = "hold"
    SKIP = "skip"


@dataclass(frozen=True, slots=True)
class Decision:
    """The gate's answer: send now, hold until ``not_before``, or skip for good, with a reason."""

    verdict: Verdict
    reason: str | None = None
    not_before: datetime | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def send(cls) -> Decision:
        """Go ahead."""
        return cls(Verdict.SEND)

    @classmethod
    def hold(cls, reason: str, not_before: datetime, **detail: Any) -> Decision:
        """Not now: try again at ``not_before``."""
        return cls(Verdict.HOLD, reason, not_before, detail)

    @classmethod
    def skip(cls, reason: str, **detail: Any) -> Decision:
        """Never send this message."""
        return cls(Verdict.SKIP, reason, None, detail)


@dataclass(frozen=True, slots=True)
class Facts:
    """What the gate needs to know about one message, read fresh at dequeue time."""

    channel: str
    campaign_status: str
    enrollment_status: str
    lead_status: str | None = None
    suppressed: bool = False
    email: str | None = None
    phone: str | None = None
    lead_timezone: str | None = None
    consent_sms_at: datetime | None = None
    consent_voice_at: datetime | None = None
    campaign_timezone: str = "UTC"
    send_window: dict[str, Any] | None = None
    """The message's step's own window, else its campaign's."""


INACTIVE_LEAD = frozenset({"unsubscribed", "bounced", "erased", "do_not_contact", "deleted", "archived"})


def check(facts: Facts, now: datetime | None = None) -> Decision:
    """Decide whether the message may go out at ``now`` (order: lifecycle, consent, law, window)."""
    now = now or utcnow()
    if facts.campaign_status in ("completed", "archived"):
        return Decision.skip(f"campaign_{facts.campaign_status}")
    if facts.enrollment_status in ("completed", "stopped"):
        return Decision.skip(f"enrollment_{facts.enrollment_status}")
    if facts.lead_status in INACTIVE_LEAD:
        return Decision.skip(f"lead_{facts.lead_status}")
    if facts.suppressed:
        return Decision.skip("suppressed")
    if facts.channel == "email" and not facts.email:
        return Decision.skip("no_email_address")
    if facts.channel in ("sms", "voicemail"):
        if not facts.phone:
            return Decision.skip("no_phone_number")
        consent = facts.consent_sms_at if facts.channel == "sms" else facts.consent_voice_at
        if consent is None:
            return Decision.skip("no_consent")
    if facts.campaign_status != "active":
        return Decision.hold(f"campaign_{facts.campaign_status}", now + PAUSED_RECHECK)
    if facts.enrollment_status != "active":
        return Decision.hold(f"enrollment_{facts.enrollment_status}", now + PAUSED_RECHECK)
    return check_time(facts, now)


def check_time(facts: Facts, now: datetime) -> Decision:
    """Hold the message until the send window (and, for calls and texts, calling hours) allow it."""
    recipient = Recipient(facts.lead_timezone, facts.phone, facts.campaign_timezone)
    answer = allowance(now, facts.channel, facts.send_window, recipient)
    zones = [str(z) for z in answer.zones]
    if answer.verdict is HoursVerdict.NO_OVERLAP:
        return Decision.hold("send_window_outside_calling_hours", now + PAUSED_RECHECK)
    if answer.verdict is HoursVerdict.NEVER:
        # The recipient may be in zones that never share calling hours: never guess.
        return Decision.skip("no_common_calling_window", zones=zones)
    if answer.verdict is HoursVerdict.LATER and answer.at is not None:
        return Decision.hold(answer.reason or "send_window", answer.at, zones=zones)
    return Decision.send()
