"""The inbound rules, in domain words: advance, suppress, stop, record, notify.

Every function takes a sync SQLAlchemy session (jobs use one directly; requests reach these
through ``AsyncSession.run_sync``) and an :class:`Effects` collector; nothing here commits or
enqueues: the caller commits, then enqueues ``effects.jobs``.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy.orm import Session

from libs import jobs as registry
from libs.db.base import utcnow
from libs.db.models.campaign import EventType, MessageStatus
from libs.db.models.inbound import InboundStatus
from libs.db.models.leads import SuppressionChannel, SuppressionKind, SuppressionReason
from libs.ledger import states
from libs.optout import Classification, Intent, classify
from libs.suppression import (
    refresh_lead_status_statement,
)
from services.campaign.inbound import erased
from services.campaign.inbound import repository as repo
from services.campaign.inbound.events import Context, Effects, Stop, advance, emit, record_once, suppress

log = structlog.get_logger(__name__)


SMS_STATUS = {
    "sending": MessageStatus.SENT,
    "sent": MessageStatus.SENT,
    "delivered": MessageStatus.DELIVERED,
    "read": MessageStatus.DELIVERED,
    "undelivered": MessageStatus.FAILED,
    "failed": MessageStatus.FAILED,
    "canceled": MessageStatus.FAILED,
}
CALL_PROGRESS = frozenset({"initiated", "ringing", "in-progress", "answered"})
CALL_FAILED = frozenset({"busy", "no-answer", "canceled", "failed"})
CARRIER_OPTED_OUT = "21610"
_DSN_STATUS = re.compile(r"[245]\.\d{1,3}\.\d{1,3}")


# --------------------------------------------------------------------------- twilio status callbacks


def _find_message(
    session: Session, *, org_id: uuid.UUID, sid: str, query: dict[str, str], channels: tuple[str, ...]
) -> Any:
    message = repo.message_by_provider_id(session, org_id=org_id, provider_id=sid, channels=channels)
    if message is not None:
        return message
    hinted = query.get("message_id")
    if not hinted:
        return None
    try:
        message_id = uuid.UUID(hinted)
    except ValueError:
        return None
    message = repo.message_by_id(session, message_id=message_id, org_id=org_id)
    if message is None or message.channel not in channels:
        return None
    if message.provider_message_id not in (None, sid):
        return None
    repo.set_provider_id(session, message_id=message.id, provider_id=sid)
    return message


def process_status(session: Session, ctx: Context, effects: Effects, event_id: uuid.UUID) -> str:
    """Apply a Twilio message or call status callback; return the outcome recorded on the event."""
    event = repo.get_event(session, event_id, lock=True)
    if event is None or event.status != InboundStatus.RECEIVED.value:
        return "already_processed" if event is not None else "missing"
    now = utcnow()
    params: dict[str, Any] = event.payload.get("params", {})
    query: dict[str, str] = event.payload.get("query", {})
    is_call = event.source == "twilio_call_status"
    sid = str(params.get("CallSid" if is_call else "MessageSid") or params.get("SmsSid") or "")
    channels = ("voicemail",) if is_call else ("sms",)
    message = _find_message(session, org_id=event.org_id, sid=sid, query=query, channels=channels) if sid else None
    if message is None:
        log.info("twilio_callback_unknown_message", event_id=str(event_id), source=event.source)
        repo.finish_event(session, event_id, status="ignored", outcome="unknown_message", processed_at=now)
        return "unknown_message"

    error_code = str(params.get("ErrorCode") or "").strip() or None
    effective_at: datetime | None = None
    if error_code == CARRIER_OPTED_OUT:
        effective_at = _carrier_opt_out(session, ctx, effects, message=message, now=now)

    target, detail = _status_target(params, is_call=is_call)
    outcome = "no_change"
    if target is not None:
        code = f"twilio_{error_code}" if error_code else (detail if target is MessageStatus.FAILED else None)
        if advance(session, message, target, now=now, error_code=code):
            outcome = target.value
            data: dict[str, Any] = {"provider_status": params.get("CallStatus" if is_call else "MessageStatus")}
            if is_call and params.get("AnsweredBy"):
                data["answered_by"] = params.get("AnsweredBy")
            if error_code:
                data["error_code"] = error_code
            if target is MessageStatus.DELIVERED:
                emit(
                    session,
                    effects,
                    org_id=message.org_id,
                    lead_id=message.lead_id,
                    type_=EventType.DELIVERED,
                    now=now,
                    message=message,
                    data=data,
                )
            elif target is MessageStatus.FAILED:
                emit(
                    session,
                    effects,
                    org_id=message.org_id,
                    lead_id=message.lead_id,
                    type_=EventType.FAILED,
                    now=now,
                    message=message,
                    data=data,
                )
        elif message.status in states.SETTLED:
            outcome = f"kept_{message.status}"
    if effective_at is not None:
        outcome = "carrier_opt_out" if outcome == "no_change" else f"{outcome}+opt_out"
    repo.finish_event(
        session,
        event_id,
        status="processed",
        outcome=outcome,
        processed_at=now,
        effective_at=effective_at,
        message_id=message.id,
        lead_id=message.lead_id,
    )
    return outcome


def _status_target(params: dict[str, Any], *, is_call: bool) -> tuple[MessageStatus | None, str | None]:
    if not is_call:
        status = str(params.get("MessageStatus") or params.get("SmsStatus") or "").lower()
        target = SMS_STATUS.get(status)
        return target, f"twilio_{status}" if target is MessageStatus.FAILED else None
    status = str(params.get("CallStatus") or "").lower()
    answered_by = str(params.get("AnsweredBy") or "").lower()
    if status in CALL_PROGRESS:
        return MessageStatus.SENT, None
    if status in CALL_FAILED:
        return MessageStatus.FAILED, f"call_{status.replace('-', '_')}"
    if status == "completed":
        if answered_by == "fax":
            return MessageStatus.FAILED, "call_fax"
        return MessageStatus.DELIVERED, None
    return None, None


def _carrier_opt_out(
    session: Session, ctx: Context, effects: Effects, *, message: Any, now: datetime
) -> datetime | None:
    lead = repo.lead_by_id(session, org_id=message.org_id, lead_id=message.lead_id)
    if lead is None or not lead.phone:
        return None
    leads = repo.leads_by_phone(session, org_id=message.org_id, phone=lead.phone)
    suppress(
        session,
        ctx,
        org_id=message.org_id,
        kind=SuppressionKind.PHONE,
        value=lead.phone,
        channels=(SuppressionChannel.SMS, SuppressionChannel.VOICEMAIL),
        reason=SuppressionReason.STOP,
        source="twilio error 21610",
        lead_ids=[row.id for row in leads],
    )
    return utcnow()


# --------------------------------------------------------------------------- inbound SMS


@dataclass(frozen=True, slots=True)
class SmsAnswer:
    """What an inbound text came to and the one confirmation to send back (``None``: none)."""

    outcome: str
    reply: str | None = None
    deferred: bool = False


def handle_sms(
    session: Session, ctx: Context, effects: Effects, *, event_id: uuid.UUID, org_id: uuid.UUID
) -> SmsAnswer:
    """Act at once on opt-out, opt-in and help texts; leave a plain reply to the ``inbound`` job."""
    event = repo.get_event(session, event_id, lock=True)
    if event is None:
        return SmsAnswer("missing")
    params: dict[str, Any] = event.payload.get("params", {})
    intent = classify(str(params.get("Body") or ""))
    if intent.intent is Intent.REPLY:
        effects.jobs.append(registry.PROCESS_INBOUND_SMS.spec(str(event_id), job_id=f"inbound-{event_id}"))
        return SmsAnswer("reply", deferred=True)
    return apply_sms(session, ctx, effects, event=event, intent=intent)


def apply_sms(session: Session, ctx: Context, effects: Effects, *, event: Any, intent: Classification) -> SmsAnswer:
    """Apply one inbound text (opt-out, opt-out of all, opt-in, help, reply) and mark the event processed."""
    now = utcnow()
    org_id = event.org_id
    params: dict[str, Any] = event.payload.get("params", {})
    phone = str(params.get("From") or "").strip()
    brand = repo.brand_for_number(session, org_id=org_id, number=str(params.get("To") or "").strip() or None)
    brand_name = brand.name if brand is not None else "This sender"
    leads = repo.leads_by_phone(session, org_id=org_id, phone=phone) if phone else []
    lead_ids = [row.id for row in leads]
    effective_at: datetime | None = None
    answer: SmsAnswer
    source = f"sms {intent.matched or intent.intent.value}"[:200]

    if intent.is_opt_out:
        everywhere = intent.intent is Intent.OPT_OUT_ALL
        channels = (SuppressionChannel.ALL,) if everywhere else (SuppressionChannel.SMS, SuppressionChannel.VOICEMAIL)
        if phone:
            suppress(
                session,
                ctx,
                org_id=org_id,
                kind=SuppressionKind.PHONE,
                value=phone,
                channels=channels,
                reason=SuppressionReason.STOP,
                source=source,
                lead_ids=lead_ids,
            )
        if everywhere:
            for lead in leads:
                if lead.email_normalized:
                    suppress(
                        session,
                        ctx,
                        org_id=org_id,
                        kind=SuppressionKind.EMAIL,
                        value=lead.email_normalized,
                        channels=(SuppressionChannel.ALL,),
                        reason=SuppressionReason.STOP,
                        source=source,
                        lead_ids=[lead.id],
                    )
        repo.stop_enrollments(session, org_id=org_id, lead_ids=lead_ids, reason="opted_out", now=now)
        effective_at = utcnow()
        for lead in leads:
            message = repo.latest_message(session, org_id=org_id, lead_id=lead.id, channels=("sms", "voicemail"))
            emit(
                session,
                effects,
                org_id=org_id,
                lead_id=lead.id,
                type_=EventType.UNSUBSCRIBED,
                now=now,
                message=message,
                data={"channel": "sms", "scope": "all" if everywhere else "sms_voicemail", "keyword": intent.matched},
            )
        answer = SmsAnswer(intent.intent.value, unsubscribed_text(brand_name, everywhere=everywhere))
    elif intent.intent is Intent.OPT_IN:
        if phone:
            repo.remove_suppressions(
                session,
                org_id=org_id,
                kind=SuppressionKind.PHONE.value,
                value=phone,
                channels=("sms", "voicemail"),
                reasons=("stop",),
            )
            if lead_ids:
                session.execute(
                    refresh_lead_status_statement(org_id=org_id, key=ctx.suppression_key, lead_ids=lead_ids)
                )
        effective_at = utcnow()
        answer = SmsAnswer("opt_in", f"{brand_name}: You are resubscribed. Reply HELP for help, STOP to unsubscribe.")
    elif intent.intent is Intent.HELP:
        answer = SmsAnswer("help", help_text(brand))
    else:
        text = str(params.get("Body") or "")[:1600]
        for lead in leads:
            message = repo.latest_message(session, org_id=org_id, lead_id=lead.id, channels=("sms", "voicemail"))
            emit(
                session,
                effects,
                org_id=org_id,
                lead_id=lead.id,
                type_=EventType.REPLIED,
                now=now,
                message=message,
                data={"channel": "sms", "text": text},
            )
        repo.stop_enrollments(session, org_id=org_id, lead_ids=lead_ids, reason="replied", now=now, rule="on_reply")
        answer = SmsAnswer("reply" if leads else "reply_unknown_lead")
    repo.finish_event(
        session,
        event.id,
        status="processed" if leads or intent.intent is not Intent.REPLY else "ignored",
        outcome=answer.outcome,
        processed_at=utcnow(),
        effective_at=effective_at,
        lead_id=lead_ids[0] if lead_ids else None,
    )
    return answer


def unsubscribed_text(brand_name: str, *, everywhere: bool) -> str:
    """The one confirmation an SMS opt-out gets."""
    scope = "from all messages and calls" if everywhere else "and will receive no more messages"
    return f"{brand_name}: You are unsubscribed {scope}. Reply START to resubscribe."


def handle_erased_sms(
    session: Session, *, event_id: uuid.UUID, org_id: uuid.UUID, body: str, to: str | None
) -> SmsAnswer:
    """Answer a text from an erased person's number, stored without its body: STOP and HELP get their answer.

    The opt-out is already in effect: the erasure's hash suppression covers the number on
    every channel, so no clear-text suppression is written. START resubscribes nobody (the
    person stays erased and cannot be added again) and gets no answer; a plain reply is
    neither recorded as a message event nor owed to a webhook.
    """
    event = repo.get_event(session, event_id, lock=True)
    if event is None:
        return SmsAnswer("missing")
    intent = classify(body)
    brand = repo.brand_for_number(session, org_id=org_id, number=(to or "").strip() or None)
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


def help_text(brand: Any) -> str:
    """The HELP answer: who is texting, how to stop, where to find more (no marketing)."""
    if brand is None:
        return "Reply STOP to unsubscribe, START to resubscribe."
    parts = [f"{brand.name}:"]
    parts.append((brand.opt_out_sms or "Reply STOP to unsubscribe.").strip())
    if brand.website:
        parts.append(f"Info: {brand.website}")
    parts.append("Msg&data rates may apply.")
    return " ".join(parts)[:480]


def process_sms_event(session: Session, ctx: Context, effects: Effects, event_id: uuid.UUID) -> str:
    """Apply a deferred inbound text (the job side of :func:`handle_sms`)."""
    event = repo.get_event(session, event_id, lock=True)
    if event is None or event.status != InboundStatus.RECEIVED.value:
        return "already_processed" if event is not None else "missing"
    intent = classify(str(event.payload.get("params", {}).get("Body") or ""))
    return apply_sms(session, ctx, effects, event=event, intent=intent).outcome


# --------------------------------------------------------------------------- links


def unsubscribe(session: Session, ctx: Context, effects: Effects, *, message_id: uuid.UUID, one_click: bool) -> bool:
    """Unsubscribe the address a message went to (idempotent); return whether the message exists."""
    message = repo.message_by_id(session, message_id=message_id)
    if message is None:
        return False
    lead = repo.lead_by_id(session, org_id=message.org_id, lead_id=message.lead_id)
    if lead is not None and lead.email_normalized:
        suppress(
            session,
            ctx,
            org_id=message.org_id,
            kind=SuppressionKind.EMAIL,
            value=lead.email_normalized,
            channels=(SuppressionChannel.EMAIL,),
            reason=SuppressionReason.UNSUBSCRIBE,
            source=f"list-unsubscribe {message.id}",
            lead_ids=[lead.id],
        )
    record_once(
        session,
        effects,
        message,
        source="unsubscribe",
        dedupe_key=str(message.id),
        payload={"one_click": one_click},
        type_=EventType.UNSUBSCRIBED,
        outcome="unsubscribed",
        data={"scope": "email", "one_click": one_click},
        stops=Stop("unsubscribed", rule="on_unsubscribe", this_campaign=True),
        effective=True,
    )
    return True


def record_open(session: Session, effects: Effects, *, message_id: uuid.UUID) -> bool:
    """Record the first open of a message; return whether the message exists."""
    message = repo.message_by_id(session, message_id=message_id)
    if message is None:
        return False
    record_once(
        session,
        effects,
        message,
        source="open",
        dedupe_key=str(message.id),
        payload={},
        type_=EventType.OPENED,
        outcome="opened",
    )
    return True


def resolve_click(session: Session, effects: Effects, *, message_id: uuid.UUID, position: int) -> str | None:
    """Return the stored URL a click token points at (recording the first click), or ``None``."""
    message = repo.message_by_id(session, message_id=message_id)
    if message is None:
        return None
    url = repo.message_link(session, message_id=message.id, position=position)
    if url is None or not url.lower().startswith(("http://", "https://")):
        return None
    record_once(
        session,
        effects,
        message,
        source="click",
        dedupe_key=f"{message.id}:{position}",
        payload={"position": position},
        type_=EventType.CLICKED,
        outcome="clicked",
        data={"url": url, "position": position},
        stops=Stop("clicked", rule="on_click", rule_default=False, this_campaign=True),
    )
    return url
