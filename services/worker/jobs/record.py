"""Record and advance: a hand-off's outcome classified, and the one statement that records it and claims the next.

:func:`classify` turns a provider's answer into the ledger state, the event, the consequences
(a bounce or a carrier opt-out suppresses, and may stop the enrollment) and the next step.
:func:`step` runs ``ledger.STEP``: it records one outcome (the enrollment moved on in the same
statement) and claims the next message, and commits both at once. :func:`orphaned` records a
claim whose holder is gone as ``unknown``.
"""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import Connection
from sqlmodel import Session

from libs.db.session import system_session
from libs.ledger import health, next_step
from libs.suppression import normalize_email, suppress_statement
from services.worker import ledger
from services.worker.channels.outcome import Outcome, SendResult
from services.worker.channels.twilio import OPTED_OUT_CODES
from services.worker.gate import PAUSED_RECHECK
from services.worker.jobs.announce import WEBHOOK_EVENTS, Announcements, announce
from services.worker.jobs.context import Context
from services.worker.jobs.outgoing import Outgoing
from services.worker.ledger import LoadedRow

log = structlog.get_logger(__name__)

_SETTLED_AS = {
    Outcome.SENT: ("sent", "sent"),
    Outcome.UNKNOWN: ("unknown", None),
    Outcome.PERMANENT: ("failed", "failed"),
    Outcome.RETRY: ("failed", "failed"),
}
"""The ledger state and event of a hand-off's outcome (a retry past the last attempt fails)."""
_BOUNCES = frozenset({"smtp_550", "smtp_551", "smtp_553"})
_RECORD_PARAMS = (
    *("r_id", "r_attempt", "r_status", "r_provider", "r_code", "r_detail", "r_next_attempt"),
    *("r_event_id", "r_event", "r_event_data", "r_position", "r_due", "r_action"),
)


@dataclass
class Record:
    """The outcome of one hand-off, as the next step statement writes it."""

    row: LoadedRow
    attempt: int
    status: str
    result: SendResult
    event: str | None = None
    next_attempt_at: datetime | None = None
    action: str | None = None
    due: datetime | None = None
    stop_reason: str | None = None
    suppress: list[Any] = field(default_factory=list)
    pause: health.Pause | None = None
    """A health rule this outcome broke: its sender is paused in the same transaction."""
    event_id: uuid.UUID = field(default_factory=uuid.uuid4)


def classify(ctx: Context, row: LoadedRow, attempt: int, result: SendResult, now: datetime) -> Record:
    """Classify a hand-off's result into the ledger state, event, consequences and next step."""
    settings = ctx.settings
    pause = _health(ctx, row, result)
    if result.outcome is Outcome.RETRY and attempt < settings.send_max_attempts:
        delay = min(settings.retry_max_seconds, settings.retry_base_seconds * 2 ** (attempt - 1))
        delay *= 0.5 + random.random()  # noqa: S311 - jitter, not security
        log.info("message_retry_scheduled", message_id=str(row.id), code=result.code, attempt=attempt)
        return Record(row, attempt, "queued", result, next_attempt_at=now + timedelta(seconds=delay), pause=pause)
    status, event = _SETTLED_AS[result.outcome]
    record = Record(row, attempt, status, result, event=event, pause=pause)
    _consequences(record)
    if record.stop_reason is None and record.status != "unknown":
        # An unknown outcome holds the enrollment on this step until an operator resolves the
        # message (libs.ledger: delivered or failed move it on, a resend sends it once more).
        record.action, record.due = next_step(row, now)
    return record


def _health(ctx: Context, row: LoadedRow, result: SendResult) -> health.Pause | None:
    """Count the outcome in the sender's window; the rule it breaks, if any (``libs.ledger.health``)."""
    if row.sender_id is None:
        return None
    code = result.code or ""
    immediate = health.IMMEDIATE.get(code)
    if immediate is not None:
        return health.Pause(row.sender_id, row.org_id, *immediate)
    if row.channel != "email" or result.outcome is Outcome.UNKNOWN:
        return None
    outcome = (
        "sent"
        if result.outcome is Outcome.SENT
        else "hard_bounce"
        if code in _BOUNCES
        else "soft_bounce"
        if code.startswith("smtp_4")
        else "failed"
    )
    window = health.observe(ctx.redis, row.sender_id, outcome)
    if outcome == "hard_bounce" and health.hard_bounce_breach(window):
        bounces = window.count("hard_bounce")
        reason = f"{bounces} hard bounces among the last {len(window)} sends"
        return health.Pause(row.sender_id, row.org_id, health.Rule.HARD_BOUNCE_RATE, reason)
    return None


def _consequences(record: Record) -> None:
    """A hard bounce suppresses the address, a carrier opt-out the number; either may stop the enrollment."""
    row, code = record.row, record.result.code
    rules = row.stop_rules or {}
    if row.channel == "email" and code in _BOUNCES:
        record.status = record.event = "bounced"
        if row.email:
            value = row.email_normalized or normalize_email(row.email)
            record.suppress.append(
                suppress_statement(
                    org_id=row.org_id,
                    channel="email",
                    kind="email",
                    value=value,
                    reason="bounce",
                    source=f"smtp:{code}",
                )
            )
            if rules.get("on_bounce"):
                record.stop_reason = "bounced"
    twilio_code = (code or "").removeprefix("twilio_")
    if twilio_code.isdigit() and int(twilio_code) in OPTED_OUT_CODES and row.phone:
        record.suppress.append(
            suppress_statement(
                org_id=row.org_id, channel="sms", kind="phone", value=row.phone, reason="stop", source="twilio:21610"
            )
        )
        if rules.get("on_unsubscribe", True):
            record.stop_reason = "unsubscribed"


def step_params(
    ctx: Context, now: datetime, record: Record | None, claim: tuple[LoadedRow, Outgoing] | None
) -> dict[str, Any]:
    """The parameters of ``ledger.STEP``: the record half and the claim half, each all NULL when absent."""
    return {"now": now, **_record_params(record), **_claim_params(ctx, now, claim)}


def _record_params(record: Record | None) -> dict[str, Any]:
    if record is None:
        return dict.fromkeys(_RECORD_PARAMS)
    result = record.result
    data = {"provider_id": result.provider_id} if result.provider_id else {"code": result.code}
    return {
        "r_id": record.row.id,
        "r_attempt": record.attempt,
        "r_status": record.status,
        "r_provider": result.provider_id,
        "r_code": result.code,
        "r_detail": result.detail,
        "r_next_attempt": record.next_attempt_at,
        "r_event_id": record.event_id,
        "r_event": record.event,
        "r_event_data": json.dumps(data),
        "r_position": record.row.position,
        "r_due": record.due,
        "r_action": record.action,
    }


def _claim_params(ctx: Context, now: datetime, claim: tuple[LoadedRow, Outgoing] | None) -> dict[str, Any]:
    if claim is None:
        return {
            **dict.fromkeys(("c_id", "c_lease", "c_subject", "c_body", "c_variant", "c_sender", "c_recheck")),
            "c_urls": [],
        }
    row, outgoing = claim
    return {
        "c_id": row.id,
        "c_sender": row.sender_id,
        "c_recheck": now + PAUSED_RECHECK,
        "c_lease": now + timedelta(seconds=ctx.lease_seconds()),
        "c_subject": outgoing.subject,
        "c_body": outgoing.body,
        "c_variant": outgoing.variant,
        "c_urls": outgoing.urls,
    }


def step(
    ctx: Context,
    conn: Connection,
    record: Record | None,
    claim: tuple[LoadedRow, Outgoing] | None,
    done: Announcements,
) -> int | None:
    """Record ``record`` and claim ``claim`` in one statement and one commit; return the claimed attempt."""
    if record is None and claim is None:
        return None
    now = ctx.now()
    params = step_params(ctx, now, record, claim)
    paused: list[Any] = []
    if record is not None and (record.suppress or record.stop_reason is not None or record.pause is not None):
        # A bounce or a carrier opt-out: suppress and stop in the same transaction as the record;
        # a broken health rule pauses the sender there too (so this very step claims nothing from it).
        with system_session(ctx.engine) as session:
            if record.pause is not None:
                paused = list(session.execute(health.PAUSE, record.pause.params(now)).all())
                for sender in paused:
                    session.execute(health.OWE_PAUSED, health.owe_paused(record.pause, sender, now))
            for statement in record.suppress:
                session.execute(statement)
            if record.stop_reason is not None:
                session.execute(ledger.STOP, {"id": record.row.enrollment_id, "reason": record.stop_reason, "now": now})
            answer = session.execute(ledger.STEP, params).one()
    else:
        answer = conn.execute(ledger.STEP, params).one()
    if record is not None:
        ctx.release_claim(record.row.id)
        _recorded(ctx, record, bool(answer.recorded), bool(answer.webhook), done)
    for sender in paused:
        assert record is not None
        assert record.pause is not None
        log.warning("sender_paused", sender_id=str(sender.id), rule=record.pause.rule, message_id=str(record.row.id))
    if answer.sender_paused:
        assert claim is not None
        log.info("message_held_sender_paused", message_id=str(claim[0].id), sender_id=str(claim[0].sender_id))
    if answer.claimed_attempt is None:
        return None
    assert claim is not None
    ctx.hold_claim(claim[0].id, int(answer.claimed_attempt))
    return int(answer.claimed_attempt)


def _recorded(ctx: Context, record: Record, recorded: bool, webhook: bool, done: Announcements) -> None:
    """After the commit: owe the live event, and the customer webhook at once (it must not wait for the batch)."""
    row = record.row
    if not recorded:
        log.warning("message_record_lost_race", message_id=str(row.id), outcome=record.result.outcome.value)
        return
    if record.status != "queued":
        done.event(record.status, row, record.result.code)
    if webhook and record.event in WEBHOOK_EVENTS:
        announce(ctx.redis, Announcements(webhooks=[record.event_id]))
    log.info("message_recorded", message_id=str(row.id), status=record.status, code=record.result.code)


def orphaned(ctx: Context, session: Session, row: LoadedRow, now: datetime, done: Announcements) -> str:
    """A claim whose holder is gone: the provider may have the message, so it becomes unknown (never resent)."""
    lost = SendResult.unknown("claim_lost", "found in sending after its claim expired")
    record = classify(ctx, row, row.attempt, lost, now)
    answer = session.execute(ledger.STEP, step_params(ctx, now, record, None)).one()
    if answer.recorded:
        done.event("unknown", row, "claim_lost")
    return "unknown"
