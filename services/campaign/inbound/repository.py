"""Every query of the inbound part: plain SQLAlchemy on a sync session (jobs, and requests via ``run_sync``).

Each statement filters by ``org_id`` explicitly; sessions here are system sessions (public
routes and jobs have no tenant token), so the explicit filter is the tenant boundary.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from libs.db.models.brand import Brand, ProviderCredential, Sender
from libs.db.models.campaign import Campaign, CampaignStep, Enrollment, EnrollmentStatus, Message, MessageEvent
from libs.db.models.inbound import (
    InboundEvent,
    MessageLink,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from libs.db.models.leads import Lead, Suppression
from libs.ledger import enrollments as ledger_enrollments
from libs.ledger import messages as ledger_messages
from libs.ledger import states
from services.campaign.inbound.rows import (
    BrandRow,
    CampaignActionsRow,
    CredentialRow,
    EventRow,
    LeadRow,
    MessageRow,
    PauseRow,
)

EVENTS: sa.Table = InboundEvent.__table__  # type: ignore[attr-defined]
MESSAGES: sa.Table = Message.__table__  # type: ignore[attr-defined]
MESSAGE_EVENTS: sa.Table = MessageEvent.__table__  # type: ignore[attr-defined]
ENROLLMENTS: sa.Table = Enrollment.__table__  # type: ignore[attr-defined]
CAMPAIGNS: sa.Table = Campaign.__table__  # type: ignore[attr-defined]
LEADS: sa.Table = Lead.__table__  # type: ignore[attr-defined]
SUPPRESSIONS: sa.Table = Suppression.__table__  # type: ignore[attr-defined]
LINKS: sa.Table = MessageLink.__table__  # type: ignore[attr-defined]
ENDPOINTS: sa.Table = WebhookEndpoint.__table__  # type: ignore[attr-defined]
DELIVERIES: sa.Table = WebhookDelivery.__table__  # type: ignore[attr-defined]
ATTEMPTS: sa.Table = WebhookAttempt.__table__  # type: ignore[attr-defined]
CREDENTIALS: sa.Table = ProviderCredential.__table__  # type: ignore[attr-defined]
SENDERS: sa.Table = Sender.__table__  # type: ignore[attr-defined]
BRANDS: sa.Table = Brand.__table__  # type: ignore[attr-defined]
STEPS: sa.Table = CampaignStep.__table__  # type: ignore[attr-defined]

UNSENT = states.UNSENT
"""Ledger states of a message nobody has claimed yet: stopping its enrollment means it never goes."""


# --------------------------------------------------------------------------- inbound events


def insert_event(
    session: Session,
    *,
    org_id: uuid.UUID,
    source: str,
    dedupe_key: str,
    payload: dict[str, Any],
    idempotency_token: str | None = None,
    raw: bytes | None = None,
    message_id: uuid.UUID | None = None,
    lead_id: uuid.UUID | None = None,
    received_at: datetime | None = None,
) -> uuid.UUID | None:
    """Insert an inbound event; return its id, or ``None`` when it is a duplicate (either key)."""
    values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "org_id": org_id,
        "source": source,
        "dedupe_key": dedupe_key[:255],
        "idempotency_token": idempotency_token[:255] if idempotency_token else None,
        "payload": payload,
        "raw": raw,
        "message_id": message_id,
        "lead_id": lead_id,
        "status": "received",
    }
    if received_at is not None:
        values["received_at"] = received_at
    stmt = pg_insert(EVENTS).values(**values).on_conflict_do_nothing().returning(EVENTS.c.id)
    return session.execute(stmt).scalar_one_or_none()


def get_event(session: Session, event_id: uuid.UUID, *, lock: bool = False) -> EventRow | None:
    """Return the inbound event row (``FOR UPDATE`` with ``lock``), or ``None``."""
    stmt = sa.select(EVENTS).where(EVENTS.c.id == event_id)
    if lock:
        stmt = stmt.with_for_update()
    return cast("EventRow | None", session.execute(stmt).first())


def finish_event(
    session: Session,
    event_id: uuid.UUID,
    *,
    status: str,
    outcome: str,
    processed_at: datetime,
    effective_at: datetime | None = None,
    message_id: uuid.UUID | None = None,
    lead_id: uuid.UUID | None = None,
    error: str | None = None,
) -> None:
    """Record how an inbound event was handled."""
    values: dict[str, Any] = {"status": status, "outcome": outcome[:64], "processed_at": processed_at}
    if effective_at is not None:
        values["effective_at"] = effective_at
    if message_id is not None:
        values["message_id"] = message_id
    if lead_id is not None:
        values["lead_id"] = lead_id
    if error is not None:
        values["error"] = error[:2000]
    session.execute(sa.update(EVENTS).where(EVENTS.c.id == event_id).values(**values))


# --------------------------------------------------------------------------- twilio accounts


def twilio_credentials(session: Session, account_sid: str) -> Sequence[CredentialRow]:
    """Every organization's Twilio credential for ``account_sid`` (``org_id``, ``secret_encrypted``)."""
    stmt = sa.select(CREDENTIALS.c.org_id, CREDENTIALS.c.secret_encrypted).where(
        CREDENTIALS.c.provider == "twilio", CREDENTIALS.c.account_sid == account_sid
    )
    return cast("Sequence[CredentialRow]", session.execute(stmt).all())


def brand_for_number(session: Session, *, org_id: uuid.UUID, number: str | None) -> BrandRow | None:
    """The brand owning the SMS/voice sender ``number`` in ``org_id`` (else the org's first brand)."""
    if number:
        stmt = (
            sa.select(BRANDS)
            .join(SENDERS, SENDERS.c.brand_id == BRANDS.c.id)
            .where(SENDERS.c.org_id == org_id, SENDERS.c.phone_number == number, SENDERS.c.kind.in_(("sms", "voice")))
            .limit(1)
        )
        row = session.execute(stmt).first()
        if row is not None:
            return cast(BrandRow, row)
    stmt = (
        sa.select(BRANDS)
        .where(BRANDS.c.org_id == org_id, BRANDS.c.archived_at.is_(None))
        .order_by(BRANDS.c.created_at)
        .limit(1)
    )
    return cast("BrandRow | None", session.execute(stmt).first())


# --------------------------------------------------------------------------- messages and leads


def message_by_id(session: Session, *, message_id: uuid.UUID, org_id: uuid.UUID | None = None) -> MessageRow | None:
    """The ledger row ``message_id`` (within ``org_id`` when given), or ``None``."""
    stmt = sa.select(MESSAGES).where(MESSAGES.c.id == message_id)
    if org_id is not None:
        stmt = stmt.where(MESSAGES.c.org_id == org_id)
    return cast("MessageRow | None", session.execute(stmt).first())


def message_by_provider_id(
    session: Session, *, org_id: uuid.UUID, provider_id: str, channels: Iterable[str]
) -> MessageRow | None:
    """The ledger row the provider knows as ``provider_id`` in ``org_id``, or ``None``."""
    stmt = sa.select(MESSAGES).where(
        MESSAGES.c.org_id == org_id,
        MESSAGES.c.provider_message_id == provider_id,
        MESSAGES.c.channel.in_(list(channels)),
    )
    return cast("MessageRow | None", session.execute(stmt.limit(1)).first())


def set_provider_id(session: Session, *, message_id: uuid.UUID, provider_id: str) -> None:
    """Record the provider id of a message that has none yet (a callback came before the worker's record)."""
    session.execute(
        sa.update(MESSAGES)
        .where(MESSAGES.c.id == message_id, MESSAGES.c.provider_message_id.is_(None))
        .values(provider_message_id=provider_id[:255])
    )


def advance_message(
    session: Session,
    *,
    message_id: uuid.UUID,
    to_status: str,
    from_statuses: Sequence[str],
    now: datetime,
    error_code: str | None = None,
    error_detail: str | None = None,
) -> bool:
    """Move a message to ``to_status`` only from one of ``from_statuses``; return whether it moved."""
    stmt = ledger_messages.advance(
        message_id=message_id,
        to_status=to_status,
        from_statuses=from_statuses,
        now=now,
        error_code=error_code,
        error_detail=error_detail,
    )
    return session.execute(stmt).first() is not None


def leads_by_phone(session: Session, *, org_id: uuid.UUID, phone: str) -> Sequence[LeadRow]:
    """Every lead of ``org_id`` with this E.164 number."""
    stmt = sa.select(LEADS).where(LEADS.c.org_id == org_id, LEADS.c.phone == phone)
    return cast("Sequence[LeadRow]", session.execute(stmt).all())


def lead_by_id(session: Session, *, org_id: uuid.UUID, lead_id: uuid.UUID) -> LeadRow | None:
    """The lead ``lead_id`` of ``org_id``, or ``None``."""
    stmt = sa.select(LEADS).where(LEADS.c.org_id == org_id, LEADS.c.id == lead_id)
    return cast("LeadRow | None", session.execute(stmt).first())


def lead_erased(session: Session, *, org_id: uuid.UUID, lead_id: uuid.UUID | None) -> bool:
    """Whether the lead ``lead_id`` of ``org_id`` was erased (GDPR Art. 17)."""
    if lead_id is None:
        return False
    stmt = sa.select(LEADS.c.erased_at).where(LEADS.c.org_id == org_id, LEADS.c.id == lead_id)
    return session.execute(stmt).scalar_one_or_none() is not None


def erased_recipient(
    session: Session,
    *,
    org_id: uuid.UUID,
    channels: Iterable[str],
    provider_id: str | None = None,
    message_id: uuid.UUID | None = None,
) -> bool:
    """Whether the message known by ``provider_id`` (or ``message_id``) in ``org_id`` went to an erased lead."""
    match = []
    if provider_id:
        match.append(MESSAGES.c.provider_message_id == provider_id)
    if message_id is not None:
        match.append(MESSAGES.c.id == message_id)
    if not match:
        return False
    stmt = (
        sa.select(sa.literal(1))
        .select_from(MESSAGES.join(LEADS, LEADS.c.id == MESSAGES.c.lead_id))
        .where(
            MESSAGES.c.org_id == org_id,
            LEADS.c.org_id == org_id,
            MESSAGES.c.channel.in_(list(channels)),
            LEADS.c.erased_at.is_not(None),
            sa.or_(*match),
        )
        .limit(1)
    )
    return session.execute(stmt).first() is not None


def erasure_hash_exists(session: Session, *, org_id: uuid.UUID, hashes: Sequence[str]) -> bool:
    """Whether one of ``hashes`` (HMACs of a normalised email or phone) is an erasure suppression of ``org_id``."""
    if not hashes:
        return False
    stmt = (
        sa.select(sa.literal(1))
        .where(
            SUPPRESSIONS.c.org_id == org_id,
            SUPPRESSIONS.c.kind == "hash",
            SUPPRESSIONS.c.reason == "erasure",
            SUPPRESSIONS.c.value.in_(list(hashes)),
        )
        .limit(1)
    )
    return session.execute(stmt).first() is not None


def latest_message(
    session: Session, *, org_id: uuid.UUID, lead_id: uuid.UUID, channels: Iterable[str]
) -> MessageRow | None:
    """The most recent message sent to a lead on one of ``channels`` (for attribution), or ``None``."""
    stmt = (
        sa.select(MESSAGES)
        .where(
            MESSAGES.c.org_id == org_id,
            MESSAGES.c.lead_id == lead_id,
            MESSAGES.c.channel.in_(list(channels)),
            MESSAGES.c.sent_at.is_not(None) | MESSAGES.c.provider_message_id.is_not(None),
        )
        .order_by(MESSAGES.c.created_at.desc())
        .limit(1)
    )
    return cast("MessageRow | None", session.execute(stmt).first())


def recipient(session: Session, *, message_id: uuid.UUID) -> tuple[str, str] | None:
    """The address a message went to and the name of the brand that sent it ("" when gone), or None."""
    stmt = (
        sa.select(LEADS.c.email, BRANDS.c.name)
        .select_from(
            MESSAGES.outerjoin(LEADS, (LEADS.c.id == MESSAGES.c.lead_id) & (LEADS.c.org_id == MESSAGES.c.org_id))
            .outerjoin(CAMPAIGNS, CAMPAIGNS.c.id == MESSAGES.c.campaign_id)
            .outerjoin(BRANDS, (BRANDS.c.id == CAMPAIGNS.c.brand_id) & (BRANDS.c.org_id == MESSAGES.c.org_id))
        )
        .where(MESSAGES.c.id == message_id)
    )
    row = session.execute(stmt).first()
    return None if row is None else (row.email or "", row.name or "")


def message_link(session: Session, *, message_id: uuid.UUID, position: int) -> str | None:
    """The URL at ``position`` of a message, or ``None``."""
    stmt = sa.select(LINKS.c.url).where(LINKS.c.message_id == message_id, LINKS.c.position == position)
    return session.execute(stmt).scalar_one_or_none()


def add_message_event(
    session: Session,
    *,
    org_id: uuid.UUID,
    lead_id: uuid.UUID,
    type_: str,
    occurred_at: datetime,
    message_id: uuid.UUID | None = None,
    campaign_id: uuid.UUID | None = None,
    data: dict[str, Any] | None = None,
) -> uuid.UUID:
    """Insert a message event (analytics and the lead timeline read these)."""
    event_id = uuid.uuid4()
    session.execute(
        sa.insert(MESSAGE_EVENTS).values(
            id=event_id,
            org_id=org_id,
            lead_id=lead_id,
            message_id=message_id,
            campaign_id=campaign_id,
            type=type_,
            occurred_at=occurred_at,
            data=data or {},
        )
    )
    return event_id


def message_event(session: Session, event_id: uuid.UUID) -> Any:
    """The message event ``event_id`` joined with its message's channel, or ``None``."""
    stmt = (
        sa.select(MESSAGE_EVENTS, MESSAGES.c.channel)
        .select_from(MESSAGE_EVENTS.outerjoin(MESSAGES, MESSAGES.c.id == MESSAGE_EVENTS.c.message_id))
        .where(MESSAGE_EVENTS.c.id == event_id)
    )
    return session.execute(stmt).first()


# --------------------------------------------------------------------------- enrollments


def stop_enrollments(
    session: Session,
    *,
    org_id: uuid.UUID,
    lead_ids: Sequence[uuid.UUID],
    reason: str,
    now: datetime,
    rule: str | None = None,
    rule_default: bool = True,
    campaign_id: uuid.UUID | None = None,
) -> list[uuid.UUID]:
    """Stop the lead's live enrollments (only where the campaign's stop ``rule`` is on, when given).

    Their messages nobody has claimed yet (``queued``/``held``) become ``skipped`` in the same
    transaction, so the worker's conditional claim can never pick them up.
    """
    if not lead_ids:
        return []
    stmt = ledger_enrollments.stop_leads(
        org_id=org_id,
        lead_ids=lead_ids,
        reason=reason,
        now=now,
        rule=rule,
        rule_default=rule_default,
        campaign_id=campaign_id,
    )
    stopped = list(session.execute(stmt).scalars())
    if stopped:
        session.execute(ledger_messages.skip_unsent(org_id=org_id, enrollment_ids=stopped, reason=reason, now=now))
    return stopped


def campaign_actions(session: Session, *, org_id: uuid.UUID, campaign_id: uuid.UUID) -> CampaignActionsRow | None:
    """The campaign's status, reply actions and first step's delay, or ``None``."""
    first_delay = (
        sa.select(STEPS.c.delay_minutes)
        .where(STEPS.c.campaign_id == CAMPAIGNS.c.id, STEPS.c.position == 1)
        .scalar_subquery()
        .label("first_delay_minutes")
    )
    stmt = sa.select(CAMPAIGNS.c.id, CAMPAIGNS.c.status, CAMPAIGNS.c.reply_actions, first_delay).where(
        CAMPAIGNS.c.org_id == org_id, CAMPAIGNS.c.id == campaign_id
    )
    return cast("CampaignActionsRow | None", session.execute(stmt).first())


def pause_facts(session: Session, *, org_id: uuid.UUID, campaign_id: uuid.UUID, lead_id: uuid.UUID) -> PauseRow | None:
    """The lead's live enrollment in the campaign with its next step's channel, window and the zones, or ``None``."""
    stmt = (
        sa.select(
            ENROLLMENTS.c.id.label("enrollment_id"),
            STEPS.c.channel.label("next_channel"),
            # A step without a window of its own holds SQL NULL (migration 0023): the campaign's applies.
            sa.func.coalesce(STEPS.c.send_window, CAMPAIGNS.c.send_window).label("send_window"),
            LEADS.c.timezone.label("lead_timezone"),
            CAMPAIGNS.c.timezone.label("campaign_timezone"),
        )
        .select_from(ENROLLMENTS)
        .join(CAMPAIGNS, CAMPAIGNS.c.id == ENROLLMENTS.c.campaign_id)
        .join(LEADS, LEADS.c.id == ENROLLMENTS.c.lead_id)
        .outerjoin(
            STEPS,
            sa.and_(
                STEPS.c.campaign_id == ENROLLMENTS.c.campaign_id,
                STEPS.c.position == ENROLLMENTS.c.next_step_position,
            ),
        )
        .where(
            ENROLLMENTS.c.org_id == org_id,
            ENROLLMENTS.c.campaign_id == campaign_id,
            ENROLLMENTS.c.lead_id == lead_id,
            ENROLLMENTS.c.status.in_(sorted(states.ENROLLMENT_LIVE)),
        )
    )
    return cast("PauseRow | None", session.execute(stmt).first())


def pause_enrollment(
    session: Session,
    *,
    org_id: uuid.UUID,
    enrollment_id: uuid.UUID,
    until: datetime,
    due: datetime,
    reason: str,
    now: datetime,
) -> datetime | None:
    """Hold the enrollment until ``until`` (next step due no earlier than ``due``); return its due time.

    ``None`` when nothing waits: the enrollment ended, or its next step is being sent.
    """
    stmt = ledger_enrollments.pause_until(
        org_id=org_id, enrollment_id=enrollment_id, until=until, due=due, reason=reason, now=now
    )
    row = session.execute(stmt).first()
    if row is None:
        return None
    if row.next_due_at is not None:
        return cast(datetime, row.next_due_at)
    # Its next step is already in the ledger: that message waits instead (when nobody has claimed it).
    deferred = ledger_enrollments.defer_unsent(org_id=org_id, enrollment_id=enrollment_id, due=due, now=now)
    waiting = session.execute(deferred).first()
    return cast(datetime, waiting.next_attempt_at) if waiting is not None else None


def openai_secret(session: Session, *, org_id: uuid.UUID) -> str | None:
    """The organization's sealed OpenAI key, or ``None``."""
    stmt = sa.select(CREDENTIALS.c.secret_encrypted).where(
        CREDENTIALS.c.org_id == org_id, CREDENTIALS.c.provider == "openai"
    )
    return cast("str | None", session.execute(stmt).scalar_one_or_none())


def add_referred_lead(
    session: Session,
    *,
    org_id: uuid.UUID,
    email: str,
    name: str | None,
    referred_by: uuid.UUID,
) -> tuple[uuid.UUID, bool] | None:
    """The lead with address ``email`` (normalized), created with source ``referral`` when new.

    Return its id and whether it was created now; ``None`` when the address belongs to an erased lead.
    """
    first, _, last = (name or "").strip().partition(" ")
    values = {
        "id": uuid.uuid4(),
        "org_id": org_id,
        "email": email,
        "email_normalized": email,
        "first_name": first[:200] or None,
        "last_name": last.strip()[:200] or None,
        "custom_fields": {"source": "referral", "referred_by_lead_id": str(referred_by)},
        "status": "active",
    }
    created = session.execute(
        pg_insert(LEADS).values(**values).on_conflict_do_nothing().returning(LEADS.c.id)
    ).scalar_one_or_none()
    if created is not None:
        return created, True
    existing = session.execute(
        sa.select(LEADS.c.id, LEADS.c.erased_at).where(LEADS.c.org_id == org_id, LEADS.c.email_normalized == email)
    ).first()
    if existing is None or existing.erased_at is not None:
        return None
    return existing.id, False


def enroll_lead(
    session: Session, *, org_id: uuid.UUID, campaign: CampaignActionsRow, lead_id: uuid.UUID, now: datetime
) -> uuid.UUID | None:
    """Enroll one active (not suppressed, not erased) lead in ``campaign`` at step 1, as an enrollment would.

    ``active`` with its first due time when the campaign runs, else ``paused`` (a draft's waits for
    the launch); ``None`` when the lead is not active or already enrolled.
    """
    running = campaign.status == "active"
    due = now + timedelta(minutes=campaign.first_delay_minutes or 0) if campaign.status != "draft" else None
    picked = sa.select(
        sa.literal(uuid.uuid4()).label("id"),
        sa.literal(org_id).label("org_id"),
        sa.literal(campaign.id).label("campaign_id"),
        LEADS.c.id.label("lead_id"),
        sa.literal((EnrollmentStatus.ACTIVE if running else EnrollmentStatus.PAUSED).value).label("status"),
        sa.literal(1).label("next_step_position"),
        sa.literal(due, sa.DateTime(timezone=True)).label("next_due_at"),
    ).where(LEADS.c.org_id == org_id, LEADS.c.id == lead_id, LEADS.c.status == "active", LEADS.c.erased_at.is_(None))
    stmt = (
        pg_insert(ENROLLMENTS)
        .from_select(["id", "org_id", "campaign_id", "lead_id", "status", "next_step_position", "next_due_at"], picked)
        .on_conflict_do_nothing()
        .returning(ENROLLMENTS.c.id)
    )
    return session.execute(stmt).scalar_one_or_none()


# --------------------------------------------------------------------------- suppressions


def remove_suppressions(
    session: Session, *, org_id: uuid.UUID, kind: str, value: str, channels: Sequence[str], reasons: Sequence[str]
) -> int:
    """Delete the named suppressions of a contact (a re-subscribe); return how many."""
    stmt = sa.delete(SUPPRESSIONS).where(
        SUPPRESSIONS.c.org_id == org_id,
        SUPPRESSIONS.c.kind == kind,
        SUPPRESSIONS.c.value == value,
        SUPPRESSIONS.c.channel.in_(list(channels)),
        SUPPRESSIONS.c.reason.in_(list(reasons)),
    )
    result: Any = session.execute(stmt)
    return int(result.rowcount or 0)


# --------------------------------------------------------------------------- webhooks


def subscribed_endpoints(session: Session, *, org_id: uuid.UUID, event_type: str) -> Sequence[Any]:
    """Active endpoints of ``org_id`` subscribed to ``event_type``."""
    stmt = sa.select(ENDPOINTS.c.id).where(
        ENDPOINTS.c.org_id == org_id,
        ENDPOINTS.c.active.is_(True),
        ENDPOINTS.c.event_types.contains([event_type]),
    )
    return session.execute(stmt).all()


def insert_delivery(
    session: Session,
    *,
    org_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    event_id: uuid.UUID,
    event_type: str,
    payload: dict[str, Any],
) -> uuid.UUID | None:
    """Owe ``payload`` to an endpoint once per event; return the new delivery id (``None``: already owed)."""
    stmt = (
        pg_insert(DELIVERIES)
        .values(
            id=uuid.uuid4(),
            org_id=org_id,
            endpoint_id=endpoint_id,
            event_id=event_id,
            event_type=event_type,
            payload=payload,
            status="pending",
        )
        .on_conflict_do_nothing(index_elements=["endpoint_id", "event_id"])
        .returning(DELIVERIES.c.id)
    )
    return session.execute(stmt).scalar_one_or_none()


def delivery_with_endpoint(session: Session, delivery_id: uuid.UUID) -> Any:
    """The delivery row locked for this attempt, with its endpoint's url, secret and state."""
    stmt = (
        sa.select(
            DELIVERIES,
            ENDPOINTS.c.url,
            ENDPOINTS.c.secret_encrypted,
            ENDPOINTS.c.active,
        )
        .select_from(DELIVERIES.join(ENDPOINTS, ENDPOINTS.c.id == DELIVERIES.c.endpoint_id))
        .where(DELIVERIES.c.id == delivery_id)
        .with_for_update(of=DELIVERIES, skip_locked=True)
    )
    return session.execute(stmt).first()


def record_attempt(
    session: Session,
    *,
    org_id: uuid.UUID,
    delivery_id: uuid.UUID,
    number: int,
    started_at: datetime,
    duration_ms: int,
    status_code: int | None,
    error: str | None,
    response_excerpt: str | None,
) -> None:
    """Log one HTTP attempt of a delivery."""
    session.execute(
        sa.insert(ATTEMPTS).values(
            id=uuid.uuid4(),
            org_id=org_id,
            delivery_id=delivery_id,
            number=number,
            started_at=started_at,
            duration_ms=duration_ms,
            status_code=status_code,
            error=error[:500] if error else None,
            response_excerpt=response_excerpt[:500] if response_excerpt else None,
        )
    )


def update_delivery(session: Session, delivery_id: uuid.UUID, **values: Any) -> None:
    """Update a delivery's state after an attempt."""
    session.execute(sa.update(DELIVERIES).where(DELIVERIES.c.id == delivery_id).values(**values))
