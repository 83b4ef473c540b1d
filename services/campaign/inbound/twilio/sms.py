"""Inbound texts: opt-out, opt-in and help act at once (with their one confirmation); a plain reply goes to the job."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy.orm import Session

from libs import jobs as registry
from libs.db.base import utcnow
from libs.db.models.campaign import EventType
from libs.db.models.leads import SuppressionChannel, SuppressionKind, SuppressionReason
from libs.errors import BadRequest
from libs.optout import Classification, Intent, classify
from libs.suppression import refresh_lead_status_statement
from services.campaign.inbound import erased, replies
from services.campaign.inbound import repository as repo
from services.campaign.inbound.events import (
    Context,
    Effects,
    Opt,
    emit,
    received,
    suppress,
    suppress_lead,
)
from services.campaign.inbound.rows import BrandRow, EventRow, LeadRow, MessageRow
from services.campaign.inbound.twilio.hook import TwilioHook, signing_org, store

log = structlog.get_logger(__name__)

TEXT_CHANNELS = ("sms", "voicemail")


@dataclass(frozen=True, slots=True)
class SmsAnswer:
    """What an inbound text came to and the one confirmation to send back (``None``: none)."""

    outcome: str
    reply: str | None = None
    deferred: bool = False


def receive(session: Session, ctx: Context, effects: Effects, hook: TwilioHook) -> SmsAnswer:
    """Verify, store and answer one inbound text; a plain reply is left to the ``inbound`` job (in ``effects``).

    A text Twilio sent before gets no second answer (outcome ``duplicate``); one from an erased
    person's number is stored without its body and answered by :func:`_answer_erased`.
    """
    org_id = signing_org(session, ctx, hook)
    sid = hook.params.first("MessageSid") or hook.params.first("SmsSid") or ""
    if not sid:
        raise BadRequest("MessageSid is missing.")
    stored = store(session, ctx, hook, org_id=org_id, source="twilio_sms", dedupe_key=sid, channels=None)
    if stored.event_id is None:
        return SmsAnswer("duplicate")
    if stored.erased:
        body, to = hook.params.first("Body") or "", hook.params.first("To")
        answer = _answer_erased(session, event_id=stored.event_id, org_id=org_id, body=body, to=to)
        log.info("sms_inbound", event_id=str(stored.event_id), outcome=answer.outcome, erased=True)
        return answer
    answer = _answer(session, ctx, effects, event_id=stored.event_id)
    log.info("sms_inbound", event_id=str(stored.event_id), outcome=answer.outcome)
    return answer


def process(session: Session, ctx: Context, effects: Effects, event_id: uuid.UUID) -> str:
    """Apply a stored text that is a plain reply (the ``inbound`` job side of :func:`receive`)."""
    event = received(session, event_id)
    if isinstance(event, str):
        return event
    intent = classify(str(event.payload.get("params", {}).get("Body") or ""))
    return _apply(session, ctx, effects, event=event, intent=intent, understood=True).outcome


def _answer(session: Session, ctx: Context, effects: Effects, *, event_id: uuid.UUID) -> SmsAnswer:
    """Act at once on opt-out, opt-in and help texts; leave a plain reply to the ``inbound`` job."""
    event: EventRow | None = repo.get_event(session, event_id, lock=True)
    if event is None:
        return SmsAnswer("missing")
    intent = classify(str(event.payload.get("params", {}).get("Body") or ""))
    if intent.intent is Intent.REPLY:
        effects.jobs.append(registry.PROCESS_INBOUND_SMS.spec(str(event_id), job_id=f"inbound-{event_id}"))
        return SmsAnswer("reply", deferred=True)
    return _apply(session, ctx, effects, event=event, intent=intent)


@dataclass(frozen=True, slots=True)
class _Text:
    """One inbound text as its rules read it."""

    org_id: uuid.UUID
    phone: str
    body: str
    brand: BrandRow | None
    leads: Sequence[LeadRow]
    now: datetime

    @property
    def brand_name(self) -> str:
        return self.brand.name if self.brand is not None else "This sender"

    @property
    def lead_ids(self) -> list[uuid.UUID]:
        return [row.id for row in self.leads]


def _apply(
    session: Session,
    ctx: Context,
    effects: Effects,
    *,
    event: EventRow,
    intent: Classification,
    understood: bool = False,
) -> SmsAnswer:
    """Apply one inbound text (opt-out, opt-out of all, opt-in, help, reply) and mark the event processed.

    ``understood``: the ``inbound`` job's side, where a plain reply is classified and acted on
    (``replies``) after the opt-out words, which always win.
    """
    params: Mapping[str, Any] = event.payload.get("params", {})
    phone = str(params.get("From") or "").strip()
    text = _Text(
        org_id=event.org_id,
        phone=phone,
        body=str(params.get("Body") or ""),
        brand=repo.brand_for_number(session, org_id=event.org_id, number=str(params.get("To") or "").strip() or None),
        leads=repo.leads_by_phone(session, org_id=event.org_id, phone=phone) if phone else [],
        now=utcnow(),
    )
    effective_at: datetime | None = None
    if intent.is_opt_out:
        answer = _opt_out(session, ctx, effects, text, intent)
        effective_at = utcnow()
    elif intent.intent is Intent.OPT_IN:
        answer = _opt_in(session, ctx, text)
        effective_at = utcnow()
    elif intent.intent is Intent.HELP:
        answer = SmsAnswer("help", help_text(text.brand))
    elif understood:
        answer = _understood(session, ctx, effects, event, text)
    else:
        answer = _reply(session, effects, text)
    lead_ids = text.lead_ids
    repo.finish_event(
        session,
        event.id,
        status="processed" if lead_ids or intent.intent is not Intent.REPLY else "ignored",
        outcome=answer.outcome,
        processed_at=utcnow(),
        effective_at=effective_at,
        lead_id=lead_ids[0] if lead_ids else None,
    )
    return answer


def _opt_out(session: Session, ctx: Context, effects: Effects, text: _Text, intent: Classification) -> SmsAnswer:
    """STOP (SMS and voicemail) or STOP ALL (every channel, the leads' addresses too), for every lead of the number."""
    everywhere = intent.intent is Intent.OPT_OUT_ALL
    source = f"sms {intent.matched or intent.intent.value}"[:200]
    channels = (SuppressionChannel.ALL,) if everywhere else (SuppressionChannel.SMS, SuppressionChannel.VOICEMAIL)
    if text.phone:
        stopped = Opt(channels, SuppressionReason.STOP, source)
        suppress(session, ctx, text.org_id, SuppressionKind.PHONE, text.phone, stopped, text.lead_ids)
    everywhere_stopped = Opt((SuppressionChannel.ALL,), SuppressionReason.STOP, source)
    for lead in text.leads if everywhere else ():
        suppress_lead(session, ctx, text.org_id, lead, SuppressionKind.EMAIL, everywhere_stopped)
    repo.stop_enrollments(session, org_id=text.org_id, lead_ids=text.lead_ids, reason="opted_out", now=text.now)
    scope = "all" if everywhere else "sms_voicemail"
    _emit_each(
        session, effects, text, EventType.UNSUBSCRIBED, {"channel": "sms", "scope": scope, "keyword": intent.matched}
    )
    return SmsAnswer(intent.intent.value, unsubscribed_text(text.brand_name, everywhere=everywhere))


def _opt_in(session: Session, ctx: Context, text: _Text) -> SmsAnswer:
    """START: lift the number's STOP suppressions on SMS and voicemail."""
    if text.phone:
        repo.remove_suppressions(
            session,
            org_id=text.org_id,
            kind=SuppressionKind.PHONE.value,
            value=text.phone,
            channels=TEXT_CHANNELS,
            reasons=("stop",),
        )
        if text.leads:
            key = ctx.suppression_key
            session.execute(refresh_lead_status_statement(org_id=text.org_id, key=key, lead_ids=text.lead_ids))
    return SmsAnswer("opt_in", f"{text.brand_name}: You are resubscribed. Reply HELP for help, STOP to unsubscribe.")


def _reply(session: Session, effects: Effects, text: _Text) -> SmsAnswer:
    """A plain reply: recorded for every lead of the number, whose sequences stop where the campaign says so."""
    _emit_each(session, effects, text, EventType.REPLIED, {"channel": "sms", "text": text.body[:1600]})
    repo.stop_enrollments(
        session, org_id=text.org_id, lead_ids=text.lead_ids, reason="replied", now=text.now, rule="on_reply"
    )
    return SmsAnswer("reply" if text.leads else "reply_unknown_lead")


def _understood(session: Session, ctx: Context, effects: Effects, event: EventRow, text: _Text) -> SmsAnswer:
    """A plain reply in the job: classified once, then each lead's campaign acts on it (on its last text)."""
    if not text.leads:
        return SmsAnswer("reply_unknown_lead")
    latest = {
        lead.id: repo.latest_message(session, org_id=text.org_id, lead_id=lead.id, channels=TEXT_CHANNELS)
        for lead in text.leads
    }
    first = next((m for m in latest.values() if m is not None), None)
    message_id = first.id if first is not None else None
    classified, classification_id = replies.classify(session, ctx, event, message_id, text.body, channel="sms")
    unmessaged = [lead for lead in text.leads if latest[lead.id] is None]
    if unmessaged:  # texted by none of our messages on this number: recorded and stopped as a plain reply
        _reply(session, effects, replace(text, leads=unmessaged))
    data = {"channel": "sms", "text": text.body[:1600]}
    for lead in text.leads:
        message = latest[lead.id]
        if message is not None:
            reply = replies.Reply(message, lead, classified, classification_id, event.received_at, data)
            replies.act(session, ctx, effects, reply)
    return SmsAnswer("reply")


def _emit_each(session: Session, effects: Effects, text: _Text, type_: EventType, data: Mapping[str, Any]) -> None:
    """Record ``type_`` for every lead of the number, on the last text or call it was sent."""
    for lead in text.leads:
        message: MessageRow | None = repo.latest_message(
            session, org_id=text.org_id, lead_id=lead.id, channels=TEXT_CHANNELS
        )
        emit(
            session, effects, org_id=text.org_id, lead_id=lead.id, type_=type_, now=text.now, message=message, data=data
        )


def unsubscribed_text(brand_name: str, *, everywhere: bool) -> str:
    """The one confirmation an SMS opt-out gets."""
    scope = "from all messages and calls" if everywhere else "and will receive no more messages"
    return f"{brand_name}: You are unsubscribed {scope}. Reply START to resubscribe."


def help_text(brand: BrandRow | None) -> str:
    """The HELP answer: who is texting, how to stop, where to find more (no marketing)."""
    if brand is None:
        return "Reply STOP to unsubscribe, START to resubscribe."
    parts = [f"{brand.name}:"]
    parts.append((brand.opt_out_sms or "Reply STOP to unsubscribe.").strip())
    if brand.website:
        parts.append(f"Info: {brand.website}")
    parts.append("Msg&data rates may apply.")
    return " ".join(parts)[:480]


def _answer_erased(session: Session, *, event_id: uuid.UUID, org_id: uuid.UUID, body: str, to: str | None) -> SmsAnswer:
    """Answer a text from an erased person's number, stored without its body: STOP and HELP get their answer.

    The opt-out is already in effect: the erasure's hash suppression covers the number on
    every channel, so no clear-text suppression is written. START resubscribes nobody (the
    person stays erased and cannot be added again) and gets no answer; a plain reply is
    neither recorded as a message event nor owed to a webhook.
    """
    if repo.get_event(session, event_id, lock=True) is None:
        return SmsAnswer("missing")
    intent = classify(body)
    brand: BrandRow | None = repo.brand_for_number(session, org_id=org_id, number=(to or "").strip() or None)
    effective_at: datetime | None = None
    if intent.is_opt_out:
        everywhere = intent.intent is Intent.OPT_OUT_ALL
        brand_name = brand.name if brand is not None else "This sender"
        answer = SmsAnswer(intent.intent.value, unsubscribed_text(brand_name, everywhere=everywhere))
        effective_at = utcnow()
    elif intent.intent is Intent.HELP:
        answer = SmsAnswer("help", help_text(brand))
    else:
        answer = SmsAnswer(erased.ERASED)
    repo.finish_event(
        session,
        event_id,
        status="ignored" if answer.outcome == erased.ERASED else "processed",
        outcome=answer.outcome,
        processed_at=utcnow(),
        effective_at=effective_at,
    )
    return answer
