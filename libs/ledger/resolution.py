"""Operators' decisions on the message ledger: resolve a message whose send outcome is unknown.

A send whose outcome cannot be known ends ``unknown`` and is never resent automatically. An
operator checks the provider's own log and decides:

- **delivered**: the message becomes ``sent`` (``sent_at`` set, errors cleared) with a ``sent``
  event, as a successful send leaves it, and the enrollment moves on by :func:`next_step`, the
  schedule the worker itself uses after a send;
- **failed**: the message becomes ``failed`` with a ``failed`` event and the enrollment moves on
  as the worker moves it after a failed send (the same :func:`next_step`);
- **resend**: the message goes back to ``queued``, due at once, so the ticker hands it to the
  worker, whose conditional claim still lets exactly one execution send it. If the worker had
  already moved the enrollment past this step and the next step has not been created yet, the
  enrollment is put back on this step, so the worker schedules the next step from the resend.
  A message is resent at most once: if the resend ends ``unknown`` again, the only choices left
  are delivered and failed.

Every decision writes one event on the message (``sent``, ``failed``, or ``held`` for a resend)
whose ``data.resolution`` says who decided (operator id and e-mail), when, through what (``api``
or ``cli``) and why (the optional note). The message update is conditional (``WHERE status =
'unknown'``), so of two operators resolving one message, exactly one wins.

The statements are plain SQLAlchemy Core, so the gateway (async session) and ``sdr resolve``
(sync session) run the very same SQL::

    batch = await resolve(session, ids, Outcome.DELIVERED, operator, note="in the provider log")
    batch = resolve_sync(session, ids, Outcome.RESEND, operator)
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
import structlog

from libs import jobs
from libs.db.base import utcnow
from libs.ledger.messages import advance_enrollments
from libs.ledger.states import CAMPAIGN_FINISHED
from libs.queue import enqueue_many
from libs.schedule import Delay, ScheduleError, SendWindow, channel_window, next_send_time, zone

if TYPE_CHECKING:
    from redis import Redis
    from sqlalchemy.orm import Session
    from sqlmodel.ext.asyncio.session import AsyncSession

log = structlog.get_logger(__name__)

MAX_BATCH = 500
"""The most messages one decision may resolve."""
NOTE_MAX = 1000
"""The longest note an operator may attach to a decision."""
RESEND_REASON = "operator_resend"


class Outcome(StrEnum):
    """What an operator decided about an ``unknown`` message."""

    DELIVERED = "delivered"
    RESEND = "resend"
    FAILED = "failed"


class Refusal(StrEnum):
    """Why a message was not resolved."""

    NOT_FOUND = "not_found"
    NOT_UNKNOWN = "not_unknown"
    ALREADY_RESENT = "already_resent"
    ENROLLMENT_STOPPED = "enrollment_stopped"
    CAMPAIGN_FINISHED = "campaign_finished"
    SEQUENCE_FINISHED = "sequence_finished"


_REFUSAL_TEXT = {
    Refusal.NOT_FOUND: "No such message.",
    Refusal.NOT_UNKNOWN: "The message is {status}, not unknown: it was already resolved or never needed it.",
    Refusal.ALREADY_RESENT: "The message was resent once already; mark it delivered or failed.",
    Refusal.ENROLLMENT_STOPPED: "The lead's enrollment is stopped; a resend would be skipped. Mark it failed.",
    Refusal.CAMPAIGN_FINISHED: "The campaign is {campaign_status}; a resend would be skipped. Mark it failed.",
    Refusal.SEQUENCE_FINISHED: "The lead finished the sequence after this step; mark it delivered or failed.",
}

_EVENT_OF = {Outcome.DELIVERED: "sent", Outcome.FAILED: "failed", Outcome.RESEND: "held"}
_STATUS_OF = {Outcome.DELIVERED: "sent", Outcome.FAILED: "failed", Outcome.RESEND: "queued"}


@dataclass(frozen=True, slots=True)
class Operator:
    """Who decides: an operator's user id and, when known, e-mail; ``via`` is ``api`` or ``cli``."""

    user_id: uuid.UUID
    email: str | None
    via: str = "api"


@dataclass(frozen=True, slots=True)
class Resolution:
    """What became of one message of a decision."""

    message_id: uuid.UUID
    resolved: bool
    outcome: Outcome
    status: str | None
    """The message's status after the decision (the current one when refused; None if it does not exist)."""
    reason: Refusal | None = None
    detail: str | None = None
    enrollment: str | None = None
    """``advanced``, ``completed``, ``rewound`` or ``unchanged`` (resolved messages only)."""
    event_id: uuid.UUID | None = None


@dataclass
class Batch:
    """A decision's results in the order asked, and what the commit owes the outside world."""

    outcome: Outcome
    operator: Operator
    note: str | None
    decided_at: datetime
    results: list[Resolution] = field(default_factory=list)
    live: list[dict[str, Any]] = field(default_factory=list)
    webhook_events: list[uuid.UUID] = field(default_factory=list)

    @property
    def resolved(self) -> int:
        """How many messages were resolved."""
        return sum(1 for r in self.results if r.resolved)

    @property
    def refused(self) -> int:
        """How many messages were not."""
        return len(self.results) - self.resolved


def next_step(row: Any, now: datetime) -> tuple[str, datetime | None]:
    """How the enrollment moves on after this step: ``complete``, or ``advance`` with the next step's due time.

    ``row`` carries ``next_step_id``, ``next_channel``, ``next_delay_minutes``, ``next_delay_unit``,
    ``next_business_days``, ``next_send_window`` (the next step's own window, else the campaign's),
    ``lead_timezone`` and ``campaign_timezone``. The worker schedules with this after every send,
    skip and unknown; resolutions reuse it.
    """
    if row.next_step_id is None:
        return "complete", None
    try:
        tz = zone(row.lead_timezone or row.campaign_timezone, default=row.campaign_timezone or "UTC")
    except ScheduleError:
        tz = zone("UTC")
    try:
        window = channel_window(SendWindow.from_json(row.next_send_window), row.next_channel)
        delay = Delay(row.next_delay_minutes, row.next_delay_unit or "minutes", bool(row.next_business_days))
        due = next_send_time(now, delay, window, tz)
    except ScheduleError:
        due = now + timedelta(minutes=row.next_delay_minutes or 0)
    return "advance", due


LOAD = sa.text(
    """
    SELECT m.id, m.status, m.org_id, m.channel, m.campaign_id, m.enrollment_id, m.error_code,
           s.position, e.status AS enrollment_status, e.next_step_position, e.next_due_at,
           c.status AS campaign_status, c.timezone AS campaign_timezone,
           COALESCE(s.send_window, c.send_window) AS send_window,
           COALESCE(ns.send_window, c.send_window) AS next_send_window,
           l.timezone AS lead_timezone,
           ns.id AS next_step_id, ns.channel AS next_channel, ns.delay_minutes AS next_delay_minutes,
           ns.delay_unit AS next_delay_unit, ns.business_days AS next_business_days,
           EXISTS (SELECT 1 FROM message_events ev
                   WHERE ev.message_id = m.id AND ev.type = 'held'
                     AND ev.data -> 'resolution' ->> 'outcome' = 'resend') AS resent,
           EXISTS (SELECT 1 FROM messages x JOIN campaign_steps xs ON xs.id = x.step_id
                   WHERE x.enrollment_id = m.enrollment_id AND xs.position > s.position) AS later_step
    FROM messages m
    JOIN campaign_steps s ON s.id = m.step_id
    JOIN enrollments e ON e.id = m.enrollment_id
    JOIN campaigns c ON c.id = m.campaign_id
    JOIN leads l ON l.id = m.lead_id
    LEFT JOIN campaign_steps ns ON ns.campaign_id = m.campaign_id AND ns.position = s.position + 1
    WHERE m.id = ANY(CAST(:ids AS uuid[]))
    """
)
"""What deciding about messages needs: their state, their enrollment's, and the next step's schedule facts."""

RESOLVE = sa.text(
    f"""
    WITH v AS (
        SELECT * FROM unnest(CAST(:ids AS uuid[]), CAST(:statuses AS varchar[]), CAST(:event_types AS varchar[]),
                             CAST(:event_ids AS uuid[]), CAST(:event_data AS text[]), CAST(:actions AS varchar[]),
                             CAST(:positions AS integer[]), CAST(:due AS timestamptz[]))
            AS v(id, status, event_type, event_id, event_data, action, position, due)
    ), resolved AS (
        UPDATE messages m
        SET status = v.status,
            sent_at = CASE WHEN v.status = 'sent' THEN :now ELSE m.sent_at END,
            error_code = CASE WHEN v.status = 'sent' THEN NULL ELSE m.error_code END,
            error_detail = CASE WHEN v.status = 'sent' THEN NULL ELSE m.error_detail END,
            next_attempt_at = CASE WHEN v.status = 'queued' THEN :now END,
            hold_reason = NULL,
            updated_at = :now
        FROM v
        WHERE m.id = v.id AND m.status = 'unknown'
        RETURNING m.id, m.org_id, m.lead_id, m.campaign_id, m.enrollment_id, m.channel, v.status, v.event_type,
                  v.event_id, v.event_data, v.action, v.position, v.due
    ), recorded AS (
        INSERT INTO message_events (id, org_id, message_id, lead_id, campaign_id, type, occurred_at, data)
        SELECT event_id, org_id, id, lead_id, campaign_id, event_type, :now, CAST(event_data AS jsonb)
        FROM resolved
    ), advanced AS (
        -- As the worker's statements move an enrollment on after a send.
        {advance_enrollments("resolved", "r", position="r.position", due="r.due", action="r.action")}
        RETURNING e.id, e.status
    ), rewound AS (
        -- Back on the resent step, only while the next step's message does not exist: the
        -- ticker clears next_due_at when it creates it, and this WHERE is re-checked on the
        -- row the ticker wrote if both run at once.
        UPDATE enrollments e
        SET next_step_position = r.position,
            next_due_at = NULL,
            status = CASE WHEN e.status = 'completed' THEN 'active' ELSE e.status END,
            completed_at = NULL,
            updated_at = :now
        FROM resolved r
        WHERE e.id = r.enrollment_id AND r.action = 'rewind' AND e.next_step_position = r.position + 1
          AND ((e.status IN ('active', 'paused') AND e.next_due_at IS NOT NULL)
               OR (e.status = 'completed' AND NOT EXISTS (
                       SELECT 1 FROM messages x JOIN campaign_steps xs ON xs.id = x.step_id
                       WHERE x.enrollment_id = e.id AND xs.position > r.position)))
        RETURNING e.id
    )
    SELECT r.id, r.status, r.event_id, r.event_type, r.org_id, r.campaign_id, r.channel,
           (SELECT a.status FROM advanced a WHERE a.id = r.enrollment_id) AS advanced_to,
           EXISTS (SELECT 1 FROM rewound w WHERE w.id = r.enrollment_id) AS rewound,
           (r.event_type IN ('sent', 'failed') AND EXISTS (
                SELECT 1 FROM webhook_endpoints w
                WHERE w.org_id = r.org_id AND w.active AND w.event_types ? r.event_type)) AS webhook
    FROM resolved r
    """  # noqa: S608 - only constant SQL of advance_enrollments is interpolated
)
"""Resolve many messages at once: the conditional update, its event, and the enrollment moved on or back."""

STATUSES = sa.text("SELECT id, status FROM messages WHERE id = ANY(CAST(:ids AS uuid[]))")

OPERATOR_BY_EMAIL = sa.text("SELECT id, email FROM users WHERE email_normalized = :email AND operator")
OPERATOR_EMAIL = sa.text("SELECT email FROM users WHERE id = :id")


def clean_note(note: str | None) -> str | None:
    """The note as stored: stripped, None when empty; raise ValueError past :data:`NOTE_MAX` characters."""
    text = (note or "").strip()
    if len(text) > NOTE_MAX:
        raise ValueError(f"at most {NOTE_MAX} characters")
    return text or None


def unique_ids(message_ids: Iterable[uuid.UUID]) -> list[uuid.UUID]:
    """The ids in the order given, each once; raise ValueError when there are none or more than :data:`MAX_BATCH`."""
    ids = list(dict.fromkeys(message_ids))
    if not ids:
        raise ValueError("at least one message id is needed")
    if len(ids) > MAX_BATCH:
        raise ValueError(f"at most {MAX_BATCH} messages at once")
    return ids


@dataclass
class _Plan:
    batch: Batch
    ids: list[uuid.UUID]
    refused: dict[uuid.UUID, Resolution] = field(default_factory=dict)
    params: dict[str, list[Any]] = field(default_factory=dict)


def _refuse(message_id: uuid.UUID, outcome: Outcome, reason: Refusal, status: str | None, **facts: Any) -> Resolution:
    detail = _REFUSAL_TEXT[reason].format(status=status, **facts)
    return Resolution(message_id, False, outcome, status, reason=reason, detail=detail)


def _resend_refusal(row: Any) -> Refusal | None:
    if row.resent:
        return Refusal.ALREADY_RESENT
    if row.enrollment_status == "stopped":
        return Refusal.ENROLLMENT_STOPPED
    if row.campaign_status in CAMPAIGN_FINISHED:
        return Refusal.CAMPAIGN_FINISHED
    if row.enrollment_status == "completed" and (row.later_step or row.next_step_position != row.position + 1):
        return Refusal.SEQUENCE_FINISHED
    return None


def _plan(
    rows: Sequence[Any], ids: list[uuid.UUID], outcome: Outcome, operator: Operator, note: str | None, now: datetime
) -> _Plan:
    batch = Batch(outcome=outcome, operator=operator, note=note, decided_at=now)
    plan = _Plan(batch, ids)
    found = {row.id: row for row in rows}
    columns: dict[str, list[Any]] = {
        k: [] for k in ("ids", "statuses", "event_types", "event_ids", "event_data", "actions", "positions", "due")
    }
    resolution = {
        "outcome": outcome.value,
        "operator_id": str(operator.user_id),
        "operator_email": operator.email,
        "via": operator.via,
        "note": note,
        "decided_at": now.isoformat(),
    }
    for message_id in ids:
        row = found.get(message_id)
        if row is None:
            plan.refused[message_id] = _refuse(message_id, outcome, Refusal.NOT_FOUND, None)
            continue
        if row.status != "unknown":
            plan.refused[message_id] = _refuse(message_id, outcome, Refusal.NOT_UNKNOWN, row.status)
            continue
        due: datetime | None = None
        if outcome is Outcome.RESEND:
            refusal = _resend_refusal(row)
            if refusal is not None:
                plan.refused[message_id] = _refuse(
                    message_id, outcome, refusal, row.status, campaign_status=row.campaign_status
                )
                continue
            action = "rewind"
            data: dict[str, Any] = {"reason": RESEND_REASON, "until": None}
        else:
            action, due = next_step(row, now)
            data = {"code": row.error_code} if row.error_code else {}
        data["resolution"] = resolution
        columns["ids"].append(message_id)
        columns["statuses"].append(_STATUS_OF[outcome])
        columns["event_types"].append(_EVENT_OF[outcome])
        columns["event_ids"].append(uuid.uuid4())
        columns["event_data"].append(json.dumps(data))
        columns["actions"].append(action)
        columns["positions"].append(row.position)
        columns["due"].append(due)
    plan.params = columns
    return plan


def _finish(plan: _Plan, resolved: Sequence[Any], statuses: dict[uuid.UUID, str]) -> Batch:
    batch = plan.batch
    done: dict[uuid.UUID, Resolution] = {}
    for row in resolved:
        if row.advanced_to is not None:
            enrollment = "completed" if row.advanced_to == "completed" else "advanced"
        else:
            enrollment = "rewound" if row.rewound else "unchanged"
        done[row.id] = Resolution(row.id, True, batch.outcome, row.status, enrollment=enrollment, event_id=row.event_id)
        if row.event_type in ("sent", "failed"):
            batch.live.append(
                {
                    "kind": row.event_type,
                    "org_id": row.org_id,
                    "campaign_id": row.campaign_id,
                    "message_id": row.id,
                    "channel": row.channel,
                    "reason": f"operator_{batch.outcome.value}",
                }
            )
        if row.webhook:
            batch.webhook_events.append(row.event_id)
    for message_id in plan.ids:
        result = done.get(message_id) or plan.refused.get(message_id)
        if result is None:  # planned, but another decision (or a late worker record) got there first
            result = _refuse(message_id, batch.outcome, Refusal.NOT_UNKNOWN, statuses.get(message_id))
        batch.results.append(result)
    log.info(
        "ledger_unknown_resolved",
        outcome=batch.outcome.value,
        operator_id=str(batch.operator.user_id),
        via=batch.operator.via,
        resolved=[str(r.message_id) for r in batch.results if r.resolved],
        refused={str(r.message_id): str(r.reason) for r in batch.results if not r.resolved},
    )
    return batch


def resolve_sync(
    session: Session,
    message_ids: Iterable[uuid.UUID],
    outcome: Outcome,
    operator: Operator,
    *,
    note: str | None = None,
    now: datetime | None = None,
) -> Batch:
    """Resolve ``unknown`` messages in ``session`` (a system session; the caller commits), then :func:`announce`."""
    ids = unique_ids(message_ids)
    now = now or utcnow()
    conn = session.connection()
    plan = _plan(conn.execute(LOAD, {"ids": ids}).all(), ids, outcome, operator, clean_note(note), now)
    resolved = conn.execute(RESOLVE, {**plan.params, "now": now}).all() if plan.params["ids"] else []
    lost = set(plan.params["ids"]) - {r.id for r in resolved}
    statuses = {r.id: r.status for r in conn.execute(STATUSES, {"ids": list(lost)})} if lost else {}
    return _finish(plan, resolved, statuses)


async def resolve(
    session: AsyncSession,
    message_ids: Iterable[uuid.UUID],
    outcome: Outcome,
    operator: Operator,
    *,
    note: str | None = None,
    now: datetime | None = None,
) -> Batch:
    """Async :func:`resolve_sync` for the gateway."""
    ids = unique_ids(message_ids)
    now = now or utcnow()
    conn = await session.connection()
    plan = _plan((await conn.execute(LOAD, {"ids": ids})).all(), ids, outcome, operator, clean_note(note), now)
    resolved = (await conn.execute(RESOLVE, {**plan.params, "now": now})).all() if plan.params["ids"] else []
    lost = set(plan.params["ids"]) - {r.id for r in resolved}
    statuses = {r.id: r.status for r in await conn.execute(STATUSES, {"ids": list(lost)})} if lost else {}
    return _finish(plan, resolved, statuses)


def operator_by_email(session: Session, email: str) -> Operator | None:
    """The operator with this e-mail (for ``sdr resolve --operator``), or None when there is no such operator."""
    row = session.connection().execute(OPERATOR_BY_EMAIL, {"email": email.strip().lower()}).first()
    return None if row is None else Operator(user_id=row.id, email=row.email, via="cli")


async def operator_email(session: AsyncSession, user_id: uuid.UUID) -> str | None:
    """The e-mail of the user an operator token names (None when the user is not in this database)."""
    return (await (await session.connection()).execute(OPERATOR_EMAIL, {"id": user_id})).scalar()


def announce(redis: Redis, batch: Batch) -> None:
    """After the commit: live events for the streams, and the webhook jobs owed to customer endpoints.

    Never raises: the ledger already holds the decision, and a Redis hiccup must not turn a
    committed decision into an error (what was not enqueued is logged).
    """
    if batch.webhook_events:
        specs = [
            jobs.PUBLISH_MESSAGE_EVENT.spec(str(event_id), job_id=f"publish-{event_id}")
            for event_id in batch.webhook_events
        ]
        try:
            enqueue_many(redis, specs)
        except Exception as exc:
            log.warning("webhook_publish_not_enqueued", events=[str(e) for e in batch.webhook_events], error=repr(exc))
    if batch.live:
        from libs import events

        events.publish_many(redis, batch.live)
