"""Inbound email rules: receive a raw email (match, erased-lead check, store, queue) and apply it in the job."""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import structlog
from sqlalchemy.orm import Session

from libs import jobs as registry
from libs.db.base import utcnow
from libs.db.models.campaign import EventType, MessageStatus, ReplyAction
from libs.db.models.leads import SuppressionChannel, SuppressionKind, SuppressionReason
from libs.optout import Classification, Intent, classify
from libs.suppression import InvalidContact, normalize_email
from services.campaign.inbound import erased, replies
from services.campaign.inbound import repository as repo
from services.campaign.inbound.email.mail import InboundMail, MailKind, MalformedMail, read
from services.campaign.inbound.events import (
    Context,
    Effects,
    Opt,
    Stop,
    advance,
    emit_for,
    finish_about,
    received,
    stop,
    suppress,
    suppress_lead,
)
from services.campaign.inbound.rows import EventRow, LeadRow, MessageRow

log = structlog.get_logger(__name__)

_DSN_STATUS = re.compile(r"[245]\.\d{1,3}\.\d{1,3}")
ON_BOUNCE = Stop("bounced", rule="on_bounce", rule_default=False)
OPTED_OUT = replies.OPTED_OUT


@dataclass(frozen=True, slots=True)
class EmailOutcome:
    """What became of one raw email.

    ``status``: ``accepted`` (stored as ``event_id``; its job is in ``effects.jobs``),
    ``duplicate`` (already stored), ``ignored`` (about no message of ours: nothing stored),
    ``malformed`` (not a readable email; ``error`` says why, nothing stored).
    """

    status: Literal["accepted", "duplicate", "ignored", "malformed"]
    kind: MailKind | None = None
    event_id: uuid.UUID | None = None
    message_id: uuid.UUID | None = None
    erased: bool = False
    error: str | None = None


def receive(session: Session, ctx: Context, effects: Effects, raw: bytes) -> EmailOutcome:
    """Read one raw email, match it to the message it answers, and store it once for the ``inbound`` job.

    The message is the first ledger id its ``In-Reply-To`` / ``References`` (or a DSN's
    original message) names. An email about an erased person (its message's lead, or its
    sender or bounced recipient) is stored as the erasure leaves emails: kind and DSN status,
    a hashed dedupe key, no MIME. The job to apply it is added to ``effects.jobs``; the caller
    commits, then enqueues them.
    """
    try:
        mail = read(raw)
    except MalformedMail as exc:
        return EmailOutcome("malformed", error=str(exc))
    message = _first_message(session, mail)
    if message is None:
        log.info("email_inbound_unmatched", kind=mail.kind.value)
        return EmailOutcome("ignored", kind=mail.kind)
    dedupe = f"{mail.mail_message_id or hashlib.sha256(raw).hexdigest()}:{message.id}"
    payload: dict[str, Any] = {"kind": mail.kind.value, "subject": mail.subject, "status": mail.status}
    stored: bytes | None = raw
    is_erased = erased.email_erased(
        session,
        ctx.suppression_key,
        org_id=message.org_id,
        lead_id=message.lead_id,
        addresses=[mail.sender, mail.recipient],
    )
    if is_erased:
        dedupe, payload, stored = erased.hashed_key(dedupe), erased.email_payload(mail.kind.value, mail.status), None
    event_id = repo.insert_event(
        session,
        org_id=message.org_id,
        source="email",
        dedupe_key=dedupe,
        payload=payload,
        raw=stored,
        message_id=message.id,
        lead_id=message.lead_id,
    )
    if is_erased:
        log.info("email_inbound_erased_lead", event_id=str(event_id) if event_id else None, kind=mail.kind.value)
    if event_id is None:
        return EmailOutcome("duplicate", kind=mail.kind, message_id=message.id, erased=is_erased)
    effects.jobs.append(registry.PROCESS_INBOUND_EMAIL.spec(str(event_id), job_id=f"inbound-{event_id}"))
    return EmailOutcome("accepted", kind=mail.kind, event_id=event_id, message_id=message.id, erased=is_erased)


def _first_message(session: Session, mail: InboundMail) -> MessageRow | None:
    for message_id in mail.message_ids:
        message: MessageRow | None = repo.message_by_id(session, message_id=message_id)
        if message is not None and message.channel == "email":
            return message
    return None


def process(session: Session, ctx: Context, effects: Effects, event_id: uuid.UUID) -> str:
    """Apply a stored inbound email (the ``inbound`` job): reply, bounce or auto-reply; return the outcome.

    An email about an erased person is stored without its MIME: only its kind and DSN status are acted on.
    """
    event: EventRow | None = repo.get_event(session, event_id)
    if event is None:
        return "missing"
    if event.raw is None:
        # Stored without its content because it is about an erased person (or erased since it came).
        if event.payload.get(erased.ERASED):
            return _apply_erased(session, effects, event.id)
        return "missing"
    try:
        mail = read(bytes(event.raw))
    except MalformedMail as exc:
        repo.finish_event(
            session, event.id, status="failed", outcome="malformed", processed_at=utcnow(), error=str(exc)
        )
        return "malformed"
    return _apply(session, ctx, effects, event.id, mail)


def _event_message(session: Session, event_id: uuid.UUID) -> tuple[EventRow, MessageRow] | str:
    """The locked event still to apply and its message, else the outcome (recorded when the message is gone)."""
    event = received(session, event_id)
    if isinstance(event, str):
        return event
    message: MessageRow | None = (
        repo.message_by_id(session, message_id=event.message_id, org_id=event.org_id) if event.message_id else None
    )
    if message is None:
        repo.finish_event(session, event_id, status="ignored", outcome="unknown_message", processed_at=utcnow())
        return "unknown_message"
    return event, message


def _apply(session: Session, ctx: Context, effects: Effects, event_id: uuid.UUID, mail: InboundMail) -> str:
    """Apply a parsed inbound email: bounce, auto-reply, reply (or opt-out written as a reply)."""
    found = _event_message(session, event_id)
    if isinstance(found, str):
        return found
    event, message = found
    now = utcnow()
    lead: LeadRow | None = repo.lead_by_id(session, org_id=message.org_id, lead_id=message.lead_id)
    effective_at = None
    outcome = mail.kind.value
    if mail.kind is MailKind.HARD_BOUNCE:
        effective_at = _hard_bounce(session, ctx, effects, message, lead, mail, now=now)
    elif mail.kind is MailKind.COMPLAINT:
        effective_at = _complaint(session, ctx, message, lead, mail, now=now)
    elif mail.kind is MailKind.SOFT_BOUNCE:
        log.info("email_soft_bounce", message_id=str(message.id), status=mail.status)
    elif mail.kind is MailKind.AUTO_REPLY:
        action = _reply(session, ctx, effects, event, message, lead, mail, automatic=True)
        log.info("email_auto_reply", message_id=str(message.id), action=action)
    elif mail.kind is MailKind.REPLY:
        intent = classify(mail.text)
        if intent.is_opt_out and lead is not None:
            _opt_out(session, ctx, effects, message, lead, intent, now=now)
            effective_at = utcnow()
            outcome = intent.intent.value
        else:
            action = _reply(session, ctx, effects, event, message, lead, mail)
            effective_at = utcnow() if action == ReplyAction.UNSUBSCRIBE else None
    finish_about(session, event_id, message, outcome, effective_at=effective_at)
    return outcome


def _reply(
    session: Session,
    ctx: Context,
    effects: Effects,
    event: EventRow,
    message: MessageRow,
    lead: LeadRow | None,
    mail: InboundMail,
    *,
    automatic: bool = False,
) -> str:
    """A reply that is no opt-out word (or an autoresponder's mail): classify it, act as its campaign says.

    Return the action taken.
    """
    classified, classification_id = replies.classify(session, ctx, event, message.id, mail.text, channel="email")
    data = {"subject": mail.subject, "text": mail.text[:2000]}
    reply = replies.Reply(message, lead, classified, classification_id, event.received_at, data, automatic)
    return replies.act(session, ctx, effects, reply)


def _hard_bounce(
    session: Session,
    ctx: Context,
    effects: Effects,
    message: MessageRow,
    lead: LeadRow | None,
    mail: InboundMail,
    *,
    now: datetime,
) -> datetime | None:
    """Mark the message bounced, suppress the bounced address, record it; return when the suppression took effect."""
    code, detail = f"dsn_{mail.status}", mail.diagnostic
    advance(session, message, MessageStatus.BOUNCED, now=now, error_code=code, error_detail=detail)
    address = _normalized(mail.recipient) or (lead.email_normalized if lead is not None else None)
    effective_at = None
    if address:
        why = Opt((SuppressionChannel.EMAIL,), SuppressionReason.BOUNCE, f"dsn {mail.status}")
        suppress(session, ctx, message.org_id, SuppressionKind.EMAIL, address, why, lead_ids=[message.lead_id])
        effective_at = utcnow()
    data = {"status": mail.status, "hard": True, "diagnostic": mail.diagnostic}
    _record_hard_bounce(session, effects, message, now=now, data=data)
    return effective_at


def _complaint(
    session: Session, ctx: Context, message: MessageRow, lead: LeadRow | None, mail: InboundMail, *, now: datetime
) -> datetime | None:
    """An abuse report: suppress the complainer on email and stop its enrollments; return when it took effect."""
    address = _normalized(mail.recipient) or (lead.email_normalized if lead is not None else None)
    log.warning("email_complaint", message_id=str(message.id), feedback_type=mail.action)
    stop(session, message, OPTED_OUT, now=now)
    if not address:
        return None
    why = Opt((SuppressionChannel.EMAIL,), SuppressionReason.COMPLAINT, f"arf {mail.action}")
    suppress(session, ctx, message.org_id, SuppressionKind.EMAIL, address, why, lead_ids=[message.lead_id])
    return utcnow()


def _opt_out(
    session: Session,
    ctx: Context,
    effects: Effects,
    message: MessageRow,
    lead: LeadRow,
    intent: Classification,
    *,
    now: datetime,
) -> None:
    """An opt-out written as a reply: suppress the lead's address (and number, for all) and stop its enrollments."""
    everywhere = intent.intent is Intent.OPT_OUT_ALL
    source = f"email reply {intent.matched}"[:200]
    channel = SuppressionChannel.ALL if everywhere else SuppressionChannel.EMAIL
    unsubscribed = Opt((channel,), SuppressionReason.UNSUBSCRIBE, source)
    suppress_lead(session, ctx, message.org_id, lead, SuppressionKind.EMAIL, unsubscribed)
    if everywhere:
        stopped = Opt((SuppressionChannel.ALL,), SuppressionReason.STOP, source)
        suppress_lead(session, ctx, message.org_id, lead, SuppressionKind.PHONE, stopped)
    stop(session, message, OPTED_OUT, now=now)
    data = {"scope": "all" if everywhere else "email", "phrase": intent.matched}
    emit_for(session, effects, message, EventType.UNSUBSCRIBED, now=now, data=data)


def _apply_erased(session: Session, effects: Effects, event_id: uuid.UUID) -> str:
    """Apply an email about an erased person, stored without its content: a hard bounce still marks its message.

    The bounced address needs no suppression of its own (the erasure's hash covers it on
    every channel) and the diagnostic, which names it, is not kept; replies and auto-replies
    are not recorded at all.
    """
    found = _event_message(session, event_id)
    if isinstance(found, str):
        return found
    event, message = found
    outcome = erased.ERASED
    now = utcnow()
    if event.payload.get("kind") == MailKind.HARD_BOUNCE.value:
        status = event.payload.get("status")
        code = str(status) if isinstance(status, str) and _DSN_STATUS.fullmatch(status) else None
        bounced = advance(session, message, MessageStatus.BOUNCED, now=now, error_code=f"dsn_{code or 'bounce'}")
        _record_hard_bounce(session, effects, message, now=now, data={"hard": True, "code": code} if bounced else None)
        outcome = MailKind.HARD_BOUNCE.value
    finish_about(session, event_id, message, outcome, status="processed" if outcome != erased.ERASED else "ignored")
    return outcome


def _record_hard_bounce(
    session: Session, effects: Effects, message: MessageRow, *, now: datetime, data: Mapping[str, Any] | None
) -> None:
    """Record a hard bounce of ``message`` (``data`` None: its event is already recorded) and stop its lead's
    enrollments where the campaign stops on bounces."""
    if data is not None:
        emit_for(session, effects, message, EventType.BOUNCED, now=now, data=data)
    stop(session, message, ON_BOUNCE, now=now)


def _normalized(address: str | None) -> str | None:
    if not address:
        return None
    try:
        return normalize_email(address)
    except InvalidContact:
        return None
