"""Twilio message and call status callbacks: stored at once, applied by the ``inbound`` job.

A callback moves its message forward in the ledger (sent, delivered, failed) and never back;
Twilio's error 21610 (the number replied STOP to the carrier) suppresses the number on SMS
and voicemail.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy.orm import Session

from libs import jobs as registry
from libs.db.base import utcnow
from libs.db.models.campaign import EventType, MessageStatus
from libs.db.models.leads import SuppressionChannel, SuppressionKind, SuppressionReason
from libs.errors import BadRequest
from libs.ledger import states
from services.campaign.inbound import repository as repo
from services.campaign.inbound.events import (
    Context,
    Effects,
    Opt,
    advance,
    emit_for,
    finish_about,
    received,
    suppress,
)
from services.campaign.inbound.rows import LeadRow, MessageRow
from services.campaign.inbound.twilio.hook import TwilioHook, signing_org, store

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


def receive(session: Session, ctx: Context, effects: Effects, hook: TwilioHook, *, call: bool) -> uuid.UUID | None:
    """Verify and store one status callback (``call``: of a voicemail call) and queue its job; return its event id.

    ``None``: Twilio sent it before (same sid and status), nothing new is stored.
    """
    org_id = signing_org(session, ctx, hook)
    params = hook.params
    sid_name, status_name = ("CallSid", "CallStatus") if call else ("MessageSid", "MessageStatus")
    sid = params.first(sid_name) or params.first("SmsSid") or ""
    status = params.first(status_name) or params.first("SmsStatus") or ""
    if not sid:
        raise BadRequest(f"{sid_name} is missing.")
    key = f"{sid}:{status}:{params.first('AnsweredBy') or ''}" if call else f"{sid}:{status}"
    source = "twilio_call_status" if call else "twilio_message_status"
    channels = ("voicemail",) if call else ("sms",)
    stored = store(session, ctx, hook, org_id=org_id, source=source, dedupe_key=key, channels=channels)
    if stored.erased:
        event = str(stored.event_id) if stored.event_id else None
        log.info("twilio_callback_erased_lead", event_id=event, source=source)
    if stored.event_id is not None:
        effects.jobs.append(
            registry.PROCESS_TWILIO_STATUS.spec(str(stored.event_id), job_id=f"inbound-{stored.event_id}")
        )
    return stored.event_id


def process(session: Session, ctx: Context, effects: Effects, event_id: uuid.UUID) -> str:
    """Apply a stored status callback (the ``inbound`` job); return the outcome recorded on the event."""
    event = received(session, event_id)
    if isinstance(event, str):
        return event
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
    effective_at = _carrier_opt_out(session, ctx, message) if error_code == CARRIER_OPTED_OUT else None
    outcome = _move(session, effects, message, params, is_call=is_call, error_code=error_code, now=now)
    if effective_at is not None:
        outcome = "carrier_opt_out" if outcome == "no_change" else f"{outcome}+opt_out"
    finish_about(session, event_id, message, outcome, effective_at=effective_at)
    return outcome


def _move(
    session: Session,
    effects: Effects,
    message: MessageRow,
    params: Mapping[str, Any],
    *,
    is_call: bool,
    error_code: str | None,
    now: datetime,
) -> str:
    """Move the message to the state the callback names (recording delivered and failed); return the outcome."""
    target, detail = _status_target(params, is_call=is_call)
    if target is None:
        return "no_change"
    code = f"twilio_{error_code}" if error_code else (detail if target is MessageStatus.FAILED else None)
    if not advance(session, message, target, now=now, error_code=code):
        return f"kept_{message.status}" if message.status in states.SETTLED else "no_change"
    data: dict[str, Any] = {"provider_status": params.get("CallStatus" if is_call else "MessageStatus")}
    if is_call and params.get("AnsweredBy"):
        data["answered_by"] = params.get("AnsweredBy")
    if error_code:
        data["error_code"] = error_code
    if target is MessageStatus.DELIVERED:
        emit_for(session, effects, message, EventType.DELIVERED, now=now, data=data)
    elif target is MessageStatus.FAILED:
        emit_for(session, effects, message, EventType.FAILED, now=now, data=data)
    return target.value


def _find_message(
    session: Session, *, org_id: uuid.UUID, sid: str, query: Mapping[str, str], channels: tuple[str, ...]
) -> MessageRow | None:
    """The message a callback is about: by its provider sid, else by the ``message_id`` the callback URL carried."""
    message: MessageRow | None = repo.message_by_provider_id(session, org_id=org_id, provider_id=sid, channels=channels)
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


def _status_target(params: Mapping[str, Any], *, is_call: bool) -> tuple[MessageStatus | None, str | None]:
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


def _carrier_opt_out(session: Session, ctx: Context, message: MessageRow) -> datetime | None:
    """Suppress the number of ``message``'s lead on SMS and voicemail (it replied STOP to the carrier)."""
    lead: LeadRow | None = repo.lead_by_id(session, org_id=message.org_id, lead_id=message.lead_id)
    if lead is None or not lead.phone:
        return None
    leads: list[LeadRow] = list(repo.leads_by_phone(session, org_id=message.org_id, phone=lead.phone))
    why = Opt((SuppressionChannel.SMS, SuppressionChannel.VOICEMAIL), SuppressionReason.STOP, "twilio error 21610")
    suppress(session, ctx, message.org_id, SuppressionKind.PHONE, lead.phone, why, [row.id for row in leads])
    return utcnow()
