"""What every inbound source shares: the typed rows it reads, its context and effects, and the event steps.

Every function takes a sync SQLAlchemy session (jobs use one directly; a request reaches its
source's one entry through a single ``AsyncSession.run_sync``) and an :class:`Effects`
collector; nothing here commits or enqueues: the caller commits, then enqueues ``effects.jobs``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from libs.crypto import SecretBox
from libs.db.base import utcnow
from libs.db.models.campaign import EventType, MessageStatus
from libs.db.models.inbound import InboundStatus
from libs.db.models.leads import SuppressionChannel, SuppressionKind, SuppressionReason
from libs.ledger import states
from libs.queue import JobSpec
from libs.suppression import refresh_lead_status_statement, suppress_statement
from services.campaign.inbound import erased
from services.campaign.inbound import repository as repo
from services.campaign.inbound.rows import EventRow, LeadRow, MessageRow
from services.campaign.inbound.settings import InboundSettings
from services.campaign.webhooks.outbox import WEBHOOK_TYPES, fan_out

# --------------------------------------------------------------------------- context and effects


@dataclass
class Effects:
    """What a unit of work asks for after its commit: jobs to enqueue (webhook deliveries among them)."""

    jobs: list[JobSpec] = field(default_factory=list)


@dataclass(frozen=True)
class Context:
    """What the rules need besides the session."""

    settings: InboundSettings
    box: SecretBox
    suppression_key: bytes

    @classmethod
    def from_settings(cls, settings: InboundSettings, *, suppression_key: bytes) -> Context:
        """Build the context from settings and the stored erasure-hash key (``libs.suppression.stored_hash_key``)."""
        return cls(settings=settings, box=SecretBox.from_settings(settings), suppression_key=suppression_key)


@dataclass(frozen=True, slots=True)
class Stop:
    """A stop of the lead's live enrollments an event asks for (where the campaign's ``rule`` is on, when given)."""

    reason: str
    rule: str | None = None
    rule_default: bool = True
    this_campaign: bool = False
    """Only the enrollment of the campaign the message belongs to."""


# --------------------------------------------------------------------------- the steps


def emit(
    session: Session,
    effects: Effects,
    *,
    org_id: uuid.UUID,
    lead_id: uuid.UUID,
    type_: EventType,
    now: datetime,
    message: MessageRow | None = None,
    campaign_id: uuid.UUID | None = None,
    data: Mapping[str, Any] | None = None,
) -> uuid.UUID:
    """Record a message event and owe it to every subscribed customer endpoint.

    An erased lead's event keeps only ids, enums and numbers and is owed to no endpoint: its
    ledger stays whole for statistics, and no customer receives data about the person again.
    """
    message_id = message.id if message is not None else None
    campaign_id = campaign_id or (message.campaign_id if message is not None else None)
    lead_erased = repo.lead_erased(session, org_id=org_id, lead_id=lead_id)
    kept = erased.event_data(data) if lead_erased else (dict(data) if data is not None else None)
    event_id = repo.add_message_event(
        session,
        org_id=org_id,
        lead_id=lead_id,
        type_=type_.value,
        occurred_at=now,
        message_id=message_id,
        campaign_id=campaign_id,
        data=kept,
    )
    if type_.value in WEBHOOK_TYPES and not lead_erased:
        channel = message.channel if message is not None else (kept or {}).get("channel")
        fan_out(
            session,
            effects.jobs,
            org_id=org_id,
            event_id=event_id,
            event_type=type_.value,
            occurred_at=now,
            body={
                "lead_id": str(lead_id),
                "message_id": str(message_id) if message_id else None,
                "campaign_id": str(campaign_id) if campaign_id else None,
                "channel": channel,
                **(kept or {}),
            },
        )
    return event_id


def emit_for(
    session: Session,
    effects: Effects,
    message: MessageRow,
    type_: EventType,
    *,
    now: datetime,
    data: Mapping[str, Any] | None = None,
) -> uuid.UUID:
    """:func:`emit` for an event about ``message`` (its organization, lead and campaign)."""
    return emit(
        session,
        effects,
        org_id=message.org_id,
        lead_id=message.lead_id,
        type_=type_,
        now=now,
        message=message,
        data=data,
    )


def stop(session: Session, message: MessageRow, rule: Stop, *, now: datetime) -> list[uuid.UUID]:
    """Stop the live enrollments of ``message``'s lead as ``rule`` says; return the stopped ids."""
    return repo.stop_enrollments(
        session,
        org_id=message.org_id,
        lead_ids=[message.lead_id],
        reason=rule.reason,
        now=now,
        rule=rule.rule,
        rule_default=rule.rule_default,
        campaign_id=message.campaign_id if rule.this_campaign else None,
    )


@dataclass(frozen=True, slots=True)
class Opt:
    """Where a contact is suppressed, why, and what the suppression says it came from."""

    channels: tuple[SuppressionChannel, ...]
    reason: SuppressionReason
    source: str


def suppress(
    session: Session,
    ctx: Context,
    org_id: uuid.UUID,
    kind: SuppressionKind,
    value: str,
    why: Opt,
    lead_ids: Sequence[uuid.UUID] = (),
) -> int:
    """Suppress a contact on ``why.channels`` (idempotent) and refresh the leads' status; return new rows."""
    added = 0
    for channel in why.channels:
        stmt = suppress_statement(
            org_id=org_id, channel=channel, kind=kind, value=value, reason=why.reason, source=why.source
        )
        if session.execute(stmt).scalar_one_or_none() is not None:
            added += 1
    if lead_ids:
        session.execute(refresh_lead_status_statement(org_id=org_id, key=ctx.suppression_key, lead_ids=lead_ids))
    return added


def suppress_lead(
    session: Session, ctx: Context, org_id: uuid.UUID, lead: LeadRow | None, kind: SuppressionKind, why: Opt
) -> bool:
    """Suppress the lead's own address (``EMAIL``) or number (``PHONE``); return whether it has one."""
    value = None if lead is None else lead.email_normalized if kind is SuppressionKind.EMAIL else lead.phone
    if lead is None or not value:
        return False
    suppress(session, ctx, org_id, kind, value, why, lead_ids=[lead.id])
    return True


def finish_about(
    session: Session,
    event_id: uuid.UUID,
    message: MessageRow,
    outcome: str,
    *,
    status: str = "processed",
    effective_at: datetime | None = None,
) -> None:
    """Record how the inbound event about ``message`` was handled (and tie it to the message and its lead)."""
    repo.finish_event(
        session,
        event_id,
        status=status,
        outcome=outcome,
        processed_at=utcnow(),
        effective_at=effective_at,
        message_id=message.id,
        lead_id=message.lead_id,
    )


def advance(
    session: Session,
    message: MessageRow,
    target: MessageStatus,
    *,
    now: datetime,
    error_code: str | None = None,
    error_detail: str | None = None,
) -> bool:
    """Move ``message`` forward to ``target`` if the ledger order allows it; return whether it moved."""
    allowed = sorted(states.advance_from(target.value))
    return repo.advance_message(
        session,
        message_id=message.id,
        to_status=target.value,
        from_statuses=allowed,
        now=now,
        error_code=error_code,
        error_detail=error_detail,
    )


def received(session: Session, event_id: uuid.UUID) -> EventRow | str:
    """The stored event ``event_id``, locked, while it waits to be applied; else the job's outcome.

    ``"missing"`` when it is gone, ``"already_processed"`` when another run applied it: a job
    runs at least once, and its second run changes nothing.
    """
    event: EventRow | None = repo.get_event(session, event_id, lock=True)
    if event is None:
        return "missing"
    if event.status != InboundStatus.RECEIVED.value:
        return "already_processed"
    return event


def record_once(
    session: Session,
    effects: Effects,
    message: MessageRow,
    *,
    source: str,
    dedupe_key: str,
    payload: dict[str, Any],
    type_: EventType,
    outcome: str,
    data: Mapping[str, Any] | None = None,
    stops: Stop | None = None,
    effective: bool = False,
) -> bool:
    """Insert the inbound event about ``message`` once, then emit its message event, stop and finish it.

    The inbound event's unique key makes the rest happen once: a second arrival (a link
    followed again, a scanner's repeat) inserts nothing and changes nothing. Return whether
    this was the first arrival. ``effective`` marks when the person's choice took effect.
    """
    now = utcnow()
    event_id = repo.insert_event(
        session,
        org_id=message.org_id,
        source=source,
        dedupe_key=dedupe_key,
        payload=payload,
        message_id=message.id,
        lead_id=message.lead_id,
        received_at=now,
    )
    if event_id is None:
        return False
    emit_for(session, effects, message, type_, now=now, data=data)
    if stops is not None:
        stop(session, message, stops, now=now)
    repo.finish_event(
        session,
        event_id,
        status="processed",
        outcome=outcome,
        processed_at=now,
        effective_at=utcnow() if effective else None,
    )
    return True
