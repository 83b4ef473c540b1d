"""What a reply's intent makes the campaign do: classify it in the job, record the audit, apply the action.

Every reply (an email reply, an inbound text that is no opt-out, help or opt-in word) is
classified inside its ``inbound`` job (:func:`libs.replies.classify.classify_reply`: opt-out
words first, then the organization's OpenAI key, else the local rules), its audit row written
(:func:`libs.replies.record.record_classification`), and the action its campaign's
``reply_actions`` names for the intent applied (:class:`~libs.db.models.campaign.ReplyAction`,
defaults :data:`~libs.db.models.campaign.DEFAULT_REPLY_ACTIONS`):

- ``stop``: the lead's sequences stop where the campaign's ``on_reply`` rule is on; the reply's
  ``replied`` event carries the intent, which marks the lead on its timeline;
- ``pause``: this campaign's enrollment waits until the date the reply names, at the next open
  window of its next step; without a date, :data:`PAUSE_DEFAULT_DAYS` (out of office 7 days,
  not now 14 days);
- ``unsubscribe``: the lead's address (or number) is suppressed on the reply's channel and its
  sequences stop;
- ``refer`` / ``refer_and_enroll``: the referred person becomes a lead (``custom_fields.source``
  ``referral``, ``referred_by_lead_id``), enrolled in this campaign with the second; the writer's
  sequences stop as for ``stop``;
- ``continue``: only recorded.

Only the actions that end the sequence record a ``replied`` message event (the worker skips every
later step of a lead with one); a pause or a continue keeps the reply on its inbound event, its
classification and the ``reply.received`` webhook.

An autoresponder's email (out of office) is classified too, but only ever pauses (when its
intent asks to wait and the campaign pauses on it); it records no ``replied`` event.

Every reply is owed to the customer's endpoints as ``reply.received`` (intent, confidence,
fields, action, lead, message, campaign).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, cast

import structlog
from sqlalchemy.orm import Session
from sqlmodel import Session as ModelSession

from libs.db.base import utcnow
from libs.db.models.campaign import DEFAULT_REPLY_ACTIONS, EventType, ReplyAction
from libs.db.models.inbound import WebhookEventType
from libs.db.models.leads import SuppressionChannel, SuppressionKind, SuppressionReason
from libs.replies.classify import Classified, classify_reply
from libs.replies.intents import Intent
from libs.replies.record import record_classification
from libs.schedule import ScheduleError, SendWindow, channel_window, next_open, zone
from libs.suppression import InvalidContact, normalize_email, refresh_lead_status_statement
from services.campaign.inbound import repository as repo
from services.campaign.inbound.events import Context, Effects, Opt, Stop, emit_for, stop, suppress_lead
from services.campaign.inbound.rows import EventRow, LeadRow, MessageRow
from services.campaign.webhooks.outbox import fan_out

log = structlog.get_logger(__name__)

ON_REPLY = Stop("replied", rule="on_reply")
OPTED_OUT = Stop("opted_out")
ENDS_SEQUENCE = frozenset({ReplyAction.STOP, ReplyAction.REFER, ReplyAction.REFER_AND_ENROLL})
"""The actions after which the sequence does not write again: only these record a ``replied`` event, which
the worker's stop rule (``on_reply``) reads as "skip every later step" (a paused or continued sequence
must still send, so its reply is kept on the inbound event, its classification and ``reply.received``)."""
PAUSE_DEFAULT_DAYS = {Intent.OUT_OF_OFFICE: 7, Intent.NOT_NOW: 14}
"""How long a reply that asks to wait but names no date holds the enrollment (from its arrival)."""


def classify(
    session: Session, ctx: Context, event: EventRow, message_id: uuid.UUID | None, text: str, *, channel: str
) -> tuple[Classified, uuid.UUID]:
    """Classify one reply with the organization's OpenAI key (else locally) and add its audit row; return both."""
    sealed = repo.openai_secret(session, org_id=event.org_id)
    api_key = ctx.box.decrypt(sealed) if sealed else None
    classified = classify_reply(text, received_at=event.received_at, channel=channel, api_key=api_key)
    row = record_classification(
        cast(ModelSession, session),
        org_id=event.org_id,
        inbound_event_id=event.id,
        message_id=message_id,
        classified=classified,
    )
    return classified, row.id


def action_for(actions: dict[str, Any] | None, intent: Intent) -> ReplyAction:
    """The campaign's action for ``intent``: its own setting, else the safe default."""
    chosen = (actions or {}).get(intent.value) or DEFAULT_REPLY_ACTIONS.get(intent.value, ReplyAction.STOP.value)
    try:
        return ReplyAction(chosen)
    except ValueError:
        return ReplyAction(DEFAULT_REPLY_ACTIONS.get(intent.value, ReplyAction.STOP.value))


@dataclass(frozen=True, slots=True)
class Reply:
    """One classified reply about ``message`` (its lead's), as the action reads it."""

    message: MessageRow
    lead: LeadRow | None
    classified: Classified
    classification_id: uuid.UUID
    received_at: datetime
    data: dict[str, Any]
    """What the ``replied`` event keeps of the reply (subject, text, channel)."""
    automatic: bool = False
    """An autoresponder's mail (``Auto-Submitted``, out-of-office subjects): not a reply of the person, so it
    records no ``replied`` event and its only action is a pause (an absence with its return date)."""


def act(session: Session, ctx: Context, effects: Effects, reply: Reply) -> str:
    """Apply the campaign's action for the reply's intent; return the action taken (the event's outcome)."""
    message, result = reply.message, reply.classified.result
    campaign = (
        repo.campaign_actions(session, org_id=message.org_id, campaign_id=message.campaign_id)
        if message.campaign_id is not None
        else None
    )
    action = action_for(campaign.reply_actions if campaign is not None else None, result.intent)
    if reply.automatic and not (action is ReplyAction.PAUSE and result.intent in PAUSE_DEFAULT_DAYS):
        action = ReplyAction.CONTINUE  # an autoresponder only ever holds the sequence: nobody answered
    now = utcnow()
    detail: dict[str, Any] = {"action": action.value, "automatic": reply.automatic}
    marked = {**reply.data, "intent": result.intent.value, "confidence": result.confidence, "action": action.value}
    if action is ReplyAction.UNSUBSCRIBE:
        _unsubscribe(session, ctx, effects, message, reply.lead, now=now)
    elif action in ENDS_SEQUENCE:  # never an autoresponder's (it only pauses or continues)
        emit_for(session, effects, message, EventType.REPLIED, now=now, data=marked)
        stop(session, message, ON_REPLY, now=now)
    if action is ReplyAction.PAUSE:
        detail["resumes_at"] = _pause(session, message, result.intent, result.fields.not_before, reply.received_at)
    if action in (ReplyAction.REFER, ReplyAction.REFER_AND_ENROLL) and campaign is not None:
        detail.update(_refer(session, ctx, message, reply, campaign, enroll=action is ReplyAction.REFER_AND_ENROLL))
    _announce(session, effects, reply, detail, now=now)
    log.info("reply_acted_on", message_id=str(message.id), intent=result.intent.value, action=action.value)
    return action.value


def _unsubscribe(
    session: Session, ctx: Context, effects: Effects, message: MessageRow, lead: LeadRow | None, *, now: datetime
) -> None:
    """An opt-out the classifier read: suppress the lead's contact on the reply's channel, stop its sequences."""
    if message.channel == "email":
        why = Opt((SuppressionChannel.EMAIL,), SuppressionReason.UNSUBSCRIBE, "email reply classified")
        suppress_lead(session, ctx, message.org_id, lead, SuppressionKind.EMAIL, why)
    else:
        channels = (SuppressionChannel.SMS, SuppressionChannel.VOICEMAIL)
        why = Opt(channels, SuppressionReason.STOP, f"{message.channel} reply classified")
        suppress_lead(session, ctx, message.org_id, lead, SuppressionKind.PHONE, why)
    stop(session, message, OPTED_OUT, now=now)
    scope = "email" if message.channel == "email" else "sms_voicemail"
    emit_for(session, effects, message, EventType.UNSUBSCRIBED, now=now, data={"scope": scope, "classified": True})


def resume_time(row: Any, until: date) -> tuple[datetime, datetime]:
    """The start of ``until`` in the lead's zone, and the first open window of the next step at or after it."""
    try:
        tz = zone(row.lead_timezone or row.campaign_timezone, default=row.campaign_timezone or "UTC")
    except ScheduleError:
        tz = zone("UTC")
    start = datetime.combine(until, time(0), tzinfo=tz)
    try:
        window = channel_window(SendWindow.from_json(row.send_window), row.next_channel or "email")
        return start, next_open(start, window, tz)
    except ScheduleError:
        return start, start


def _pause(
    session: Session, message: MessageRow, intent: Intent, not_before: date | None, received_at: datetime
) -> str | None:
    """Hold this campaign's enrollment of the lead until ``not_before`` (else the default); return the due time."""
    if message.campaign_id is None:
        return None
    facts = repo.pause_facts(session, org_id=message.org_id, campaign_id=message.campaign_id, lead_id=message.lead_id)
    if facts is None:
        return None
    until = not_before or (received_at + timedelta(days=PAUSE_DEFAULT_DAYS.get(intent, 14))).date()
    start, due = resume_time(facts, until)
    resumes = repo.pause_enrollment(
        session,
        org_id=message.org_id,
        enrollment_id=facts.enrollment_id,
        until=start,
        due=due,
        reason=intent.value,
        now=utcnow(),
    )
    return resumes.isoformat() if resumes is not None else None


def _refer(
    session: Session, ctx: Context, message: MessageRow, reply: Reply, campaign: Any, *, enroll: bool
) -> dict[str, Any]:
    """Create the referred person as a lead (and enroll it when asked); return what became of it."""
    referral = reply.classified.result.fields.referral
    if referral is None or referral.email is None:
        return {"referral": "no_contact"}
    try:
        email = normalize_email(str(referral.email))
    except InvalidContact:
        return {"referral": "invalid_contact"}
    found = repo.add_referred_lead(
        session, org_id=message.org_id, email=email, name=referral.name, referred_by=message.lead_id
    )
    if found is None:
        return {"referral": "erased"}
    lead_id, created = found
    session.execute(refresh_lead_status_statement(org_id=message.org_id, key=ctx.suppression_key, lead_ids=[lead_id]))
    detail: dict[str, Any] = {"referral": "created" if created else "existing", "referred_lead_id": str(lead_id)}
    if enroll:
        enrolled = repo.enroll_lead(session, org_id=message.org_id, campaign=campaign, lead_id=lead_id, now=utcnow())
        detail["referred_enrollment_id"] = str(enrolled) if enrolled else None
    return detail


def _announce(session: Session, effects: Effects, reply: Reply, detail: dict[str, Any], *, now: datetime) -> None:
    """Owe ``reply.received`` to the subscribed endpoints (never about an erased lead)."""
    message, result = reply.message, reply.classified.result
    if repo.lead_erased(session, org_id=message.org_id, lead_id=message.lead_id):
        return
    fan_out(
        session,
        effects.jobs,
        org_id=message.org_id,
        event_id=uuid.uuid5(reply.classification_id, str(message.id)),  # one per lead of a shared number
        event_type=WebhookEventType.REPLY_RECEIVED.value,
        occurred_at=now,
        body={
            "lead_id": str(message.lead_id),
            "message_id": str(message.id),
            "campaign_id": str(message.campaign_id) if message.campaign_id else None,
            "channel": message.channel,
            "intent": result.intent.value,
            "confidence": result.confidence,
            "source": result.source,
            "fields": result.fields.model_dump(mode="json", exclude_none=True),
            **detail,
        },
    )
