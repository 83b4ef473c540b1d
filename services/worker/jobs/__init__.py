"""The job functions RQ runs: gate, personalize, claim, send, record, schedule the next step.

Delivery guarantee: **at most once per message, and never silently lost**. A job may run
twice (RQ ``unique`` ids do not stop a second execution, a repair may re-enqueue, a killed
worker's job may be retried); the conditional claim lets exactly one execution hand the
message to a provider. Errors known to happen before the hand-off put the message back in
the ledger with a next-attempt time (PostgreSQL is the scheduler: RQ's own scheduler can
enqueue twice and dies on a Redis error); anything that may have reached the provider ends
``unknown`` for an operator. Job-timeout exceptions are never swallowed.

A job carries a batch of message ids and works on it set-based:

1. **Load and gate** (one transaction for the batch): one query loads every message with its
   gate facts, one query per organization checks suppressions, the pure gate decides, the
   Redis caps are taken in one pipeline, every skip and hold is written by one statement,
   and the content of every sendable message is written and frozen in the audit table by
   one ``INSERT ... ON CONFLICT DO NOTHING`` (a concurrent execution's content wins, and is
   what goes out). Model calls, when an organization has an OpenAI key, happen outside any
   transaction, between the load and the freeze.
2. **Step by step** (one statement and one durable commit per message): the statement that
   *claims* message ``i`` (``queued``/due ``held`` -> ``sending``, with its body and tracked
   links) also *records* the outcome of message ``i - 1`` (ledger, event, next step). The
   claim is committed before the hand-off, so a message is never handed off unclaimed; the
   outcome of a hand-off is committed before the next hand-off starts, so a crash (``kill
   -9``) leaves at most one message of the batch in ``sending``: it becomes ``unknown`` when
   its lease expires, and every message after it is still ``queued`` for the repair pass.
   The lease is short (``SDR_WORKER_ALIVE_TTL``) and renewed by a thread of the live process
   while the send runs, so a killed worker's claim runs out within seconds while a slow send
   of a live one is never taken for lost. An ``unknown`` outcome holds the enrollment on its
   step (no next step is scheduled) until an operator resolves the message.
   A Python exception during a send marks that one message ``unknown`` at once. Nothing is
   recorded in bulk after the fact, so no outcome of a send that happened is ever lost.
   For email the statement commits on a second thread while this one speaks SMTP up to the
   354 reply to DATA (nothing is handed off before the final "."); the final "." waits for
   the commit, and a send whose claim was refused or failed is aborted (connection closed).

Live events and customer webhook jobs are announced only after the commit that recorded them
(:func:`announce` is the one place that does).

The package keeps ``services.worker.jobs.<function>`` valid for jobs already in Redis (the
paths are in ``libs.jobs``). ``context.py`` holds the process's send context (pools, provider
clients, held claims); ``outgoing.py`` what goes out on each channel; ``announce.py`` the
after-commit announcements; this module the batch.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator, Mapping, Sequence
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any

import structlog
from rq.timeouts import BaseTimeoutException
from sqlalchemy import Connection
from sqlalchemy.engine import Row
from sqlmodel import Session

from libs import templating
from libs.db.session import system_role, system_session
from libs.ledger import next_step as _next_step
from libs.suppression import (
    find_suppressed_sync,
    has_erasure_hashes,
    normalize_email,
    suppress_statement,
)
from services.worker import ledger
from services.worker.channels.outcome import Outcome, SendResult
from services.worker.channels.twilio import (
    OPTED_OUT_CODES,
)
from services.worker.gate import Decision, Facts, Verdict, check, check_time
from services.worker.jobs import outgoing
from services.worker.jobs.announce import LIVE_KIND, Announcements, announce
from services.worker.jobs.context import CONTEXT, QUEUE_OF, Context, context, install, job_for
from services.worker.jobs.outgoing import Handoff, Outgoing
from services.worker.personalize import Draft, Personalizer, Request
from services.worker.personalize.prompt import PROMPT_VERSION
from services.worker.ratelimit import DAY, HOUR, MINUTE, Limit
from services.worker.settings import WorkerSettings

__all__ = [
    "CONTEXT",
    "LIVE_KIND",
    "QUEUE_OF",
    "Announcements",
    "Context",
    "announce",
    "context",
    "install",
    "job_for",
    "process",
    "run_batch",
    "send_messages",
]

log = structlog.get_logger(__name__)

RECHECK_AFTER = timedelta(seconds=5)
"""A batch older than this re-checks send windows and calling hours right before each claim."""
WEBHOOK_EVENTS = frozenset({"sent", "delivered", "failed", "bounced"})


# --------------------------------------------------------------------------- the batch


@dataclass
class Item:
    """One sendable message of a batch: its loaded row, frozen draft and chosen variant."""

    row: Row[Any]
    facts: Facts
    writer: Personalizer
    variant: Mapping[str, Any] | None
    draft: Draft | None = None


@dataclass
class Record:
    """The outcome of one hand-off, as the next step statement writes it."""

    row: Row[Any]
    attempt: int
    status: str
    result: SendResult
    event: str | None = None
    next_attempt_at: datetime | None = None
    action: str | None = None
    due: datetime | None = None
    stop_reason: str | None = None
    suppress: list[Any] = field(default_factory=list)
    event_id: uuid.UUID = field(default_factory=uuid.uuid4)


def send_messages(message_ids: list[str]) -> dict[str, str]:
    """Send each message at most once: gate, personalize, claim, send, record, schedule the next step."""
    ctx = context()
    results: dict[str, str] = {}
    ids: list[uuid.UUID] = []
    for raw in message_ids:
        try:
            ids.append(uuid.UUID(raw))
        except ValueError:
            results[raw] = "invalid"
    for message_id, outcome in run_batch(ctx, ids).items():
        results[str(message_id)] = outcome
    return results


def process(ctx: Context, message_id: uuid.UUID) -> str:
    """Run one message through the pipeline; return what happened to it."""
    return run_batch(ctx, [message_id])[message_id]


def run_batch(ctx: Context, message_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, str]:
    """Run a batch of messages through the pipeline; return what happened to each."""
    results = dict.fromkeys(message_ids, "missing")
    done = Announcements()
    try:
        items = _load_and_gate(ctx, message_ids, results, done)
        announce(ctx.redis, done)
        _deliver(ctx, items, results, done)
    finally:
        announce(ctx.redis, done)
    return results


def _load_and_gate(
    ctx: Context, message_ids: Sequence[uuid.UUID], results: dict[uuid.UUID, str], done: Announcements
) -> list[Item]:
    """Load, gate, skip or hold, and freeze the content of a batch; return what may be sent."""
    now = ctx.now()
    with system_session(ctx.engine) as session:
        rows = ledger.load_many(session, message_ids, PROMPT_VERSION)
        candidates = _triage(ctx, session, rows, now, results, done)
        settle, sendable = _gate(ctx, session, candidates, now, results)
        sendable = _take_caps(ctx, sendable, now, settle)
        if settle:
            _settle(session, settle, now, results, done)
        items, later, refused = _items(ctx, sendable, results)
        if refused:
            _settle(session, refused, now, results, done)
        _freeze(session, [i for i in items if i.row.cached_content is None], now)
    if later:
        refused = []  # the model is called outside any transaction
        written = [item for item in later if _write(item, results, refused)]
        with system_session(ctx.engine) as session:
            if refused:
                _settle(session, refused, ctx.now(), results, done)
            _freeze(session, written, ctx.now())
        items.extend(written)
    return items


def _triage(
    ctx: Context,
    session: Session,
    rows: Sequence[Row[Any]],
    now: datetime,
    results: dict[uuid.UUID, str],
    done: Announcements,
) -> list[Row[Any]]:
    """Answer at once for rows that are done, in flight, orphaned or not due; return the rest."""
    candidates: list[Row[Any]] = []
    for row in rows:
        if row.status in ledger.TERMINAL:
            results[row.id] = "done"
        elif row.status == "sending":
            if row.next_attempt_at is not None and row.next_attempt_at > now:
                results[row.id] = "in_flight"  # another execution holds the claim
            else:
                results[row.id] = _orphaned(ctx, session, row, now, done)
        elif row.next_attempt_at is not None and row.next_attempt_at > now:
            results[row.id] = "not_due"
        else:
            candidates.append(row)
    return candidates


def _gate(
    ctx: Context, session: Session, candidates: list[Row[Any]], now: datetime, results: dict[uuid.UUID, str]
) -> tuple[list[tuple[Row[Any], Decision]], list[tuple[Row[Any], Facts]]]:
    """The gate's decision on each candidate: ``(to settle, sendable)``."""
    suppressed = _suppressed(ctx, session, candidates)
    settle: list[tuple[Row[Any], Decision]] = []
    sendable: list[tuple[Row[Any], Facts]] = []
    for row in candidates:
        facts = _facts(row, row.id in suppressed)
        try:
            decision = _stop_rules(row) or check(facts, now)
        except Exception as exc:  # one broken message must not block the rest of the batch
            log.exception("message_gate_failed", message_id=str(row.id), error=type(exc).__name__)
            results[row.id] = "error"
            continue
        if decision.verdict is Verdict.SEND:
            sendable.append((row, facts))
        else:
            settle.append((row, decision))
    return settle, sendable


def _take_caps(
    ctx: Context,
    sendable: list[tuple[Row[Any], Facts]],
    now: datetime,
    settle: list[tuple[Row[Any], Decision]],
) -> list[tuple[Row[Any], Facts]]:
    """Take the Redis caps of the sendable rows in one pipeline; a row over a cap is held (added to ``settle``)."""
    if not sendable:
        return sendable
    taken = ctx.limiter.take_many([_limits(ctx.settings, row) for row, _ in sendable], now)
    allowed: list[tuple[Row[Any], Facts]] = []
    for (row, facts), verdict in zip(sendable, taken, strict=True):
        if verdict.allowed:
            allowed.append((row, facts))
        else:
            assert verdict.limit is not None
            assert verdict.retry_at is not None
            name = verdict.limit.name
            settle.append((row, Decision.hold(f"cap_{name.split(':')[0]}_{name.rsplit(':', 1)[1]}", verdict.retry_at)))
    return allowed


def _items(
    ctx: Context, sendable: list[tuple[Row[Any], Facts]], results: dict[uuid.UUID, str]
) -> tuple[list[Item], list[Item], list[tuple[Row[Any], Decision]]]:
    """The items to send: ``(written now, to write with the model outside the transaction, refused)``."""
    items: list[Item] = []
    later: list[Item] = []
    refused: list[tuple[Row[Any], Decision]] = []
    for row, facts in sendable:
        item = Item(
            row,
            facts,
            _writer(ctx, row),
            templating.choose_variant(row.enrollment_id, row.step_id, row.variants or []),
        )
        if row.cached_content is not None:
            item.draft = Draft(row.channel, dict(row.cached_content), row.cached_source, "cached")
            items.append(item)
        elif item.writer.client is None:
            if _write(item, results, refused):
                items.append(item)
        else:
            later.append(item)
    return items, later, refused


def _write(item: Item, results: dict[uuid.UUID, str], refused: list[tuple[Row[Any], Decision]]) -> bool:
    """Personalize one message; a bug in one (the writer handles provider errors itself) spares the rest.

    A template over a render bound fails its message for good (added to ``refused``, with the
    bound as the reason): rendering it again would only hit the bound again.
    """
    try:
        item.draft = item.writer.write(_request(item.row, item.variant))
    except templating.RenderLimitExceeded as exc:
        log.warning("message_template_refused", message_id=str(item.row.id), reason=exc.reason, detail=exc.message)
        refused.append((item.row, Decision.skip(exc.reason, status="failed")))
        return False
    except Exception as exc:
        log.exception("message_write_failed", message_id=str(item.row.id), error=type(exc).__name__)
        results[item.row.id] = "error"
        return False
    return True


def _suppressed(ctx: Context, session: Session, rows: Sequence[Row[Any]]) -> set[uuid.UUID]:
    """Ids of the messages whose lead is suppressed on the message's channel (one query per organization)."""
    groups: dict[tuple[uuid.UUID, str], list[Row[Any]]] = {}
    for row in rows:
        groups.setdefault((row.org_id, row.channel), []).append(row)
    found: set[uuid.UUID] = set()
    for (org_id, channel), members in groups.items():
        key = ctx.erasure_key() if has_erasure_hashes(session, org_id) else None
        hits = find_suppressed_sync(
            session, org_id=org_id, lead_ids=[r.lead_id for r in members], channel=channel, key=key
        )
        found.update(r.id for r in members if r.lead_id in hits)
    return found


def _facts(row: Row[Any], suppressed: bool) -> Facts:
    return Facts(
        channel=row.channel,
        campaign_status=row.campaign_status,
        enrollment_status=row.enrollment_status,
        lead_status="erased" if row.lead_status == "erased" else None,
        suppressed=suppressed,
        email=row.email,
        phone=row.phone,
        lead_timezone=row.lead_timezone,
        consent_sms_at=row.consent_sms_at,
        consent_voice_at=row.consent_voice_at,
        campaign_timezone=row.campaign_timezone or "UTC",
        send_window=row.send_window,
    )


def _stop_rules(row: Row[Any]) -> Decision | None:
    """Skip when the lead already replied, unsubscribed, bounced (or clicked) and the campaign stops on it."""
    stops = set(row.stop_events or ())
    rules = row.stop_rules or {}
    for event_type, rule in (("replied", "on_reply"), ("unsubscribed", "on_unsubscribe"), ("bounced", "on_bounce")):
        if event_type in stops and rules.get(rule, event_type != "bounced"):
            return Decision.skip(f"stopped_{event_type}")
    if "clicked" in stops and rules.get("on_click"):
        return Decision.skip("stopped_clicked")
    if row.sender_id is None:
        return Decision.skip("no_sender")
    return None


def _limits(settings: WorkerSettings, row: Row[Any]) -> list[Limit]:
    sender = f"sender:{row.sender_id}"
    if row.channel == "email":
        limits = [
            Limit(f"{sender}:hour", row.hourly_limit or settings.email_hourly_cap, HOUR),
            Limit(f"{sender}:day", row.daily_limit or settings.email_daily_cap, DAY),
        ]
        domain = (row.email_normalized or row.email or "").rpartition("@")[2]
        if domain:
            limits.append(Limit(f"domain:{row.org_id}:{domain}:minute", settings.domain_pacing_per_minute, MINUTE))
        return limits
    return [
        Limit(f"{sender}:hour", row.hourly_limit or settings.sms_hourly_cap, HOUR),
        Limit(f"{sender}:day", row.daily_limit or settings.sms_daily_cap, DAY),
    ]


def _settle(
    session: Session,
    decisions: Sequence[tuple[Row[Any], Decision]],
    now: datetime,
    results: dict[uuid.UUID, str],
    done: Announcements,
) -> None:
    """Write every skip and hold of a batch in one statement (events, next step or stop included).

    A skip whose detail says ``status="failed"`` (a template over a render bound) is written as failed.
    """
    columns: dict[str, list[Any]] = {
        k: []
        for k in ("ids", "statuses", "reasons", "next_at", "event_ids", "event_data", "actions", "positions", "due")
    }
    for row, decision in decisions:
        reason = (decision.reason or "")[:64]
        held = decision.verdict is Verdict.HOLD
        action: str | None = None
        due: datetime | None = None
        if not held:
            if reason.startswith("stopped_"):
                action = "stop"
            else:
                action, due = _next_step(row, now)
        columns["ids"].append(row.id)
        columns["statuses"].append("held" if held else decision.detail.get("status", "skipped"))
        columns["reasons"].append(reason)
        columns["next_at"].append(decision.not_before if held else None)
        columns["event_ids"].append(uuid.uuid4())
        until = decision.not_before.isoformat() if decision.not_before else None
        columns["event_data"].append(json.dumps({"reason": decision.reason, "until": until}))
        columns["actions"].append(action)
        columns["positions"].append(row.position)
        columns["due"].append(due)
    settled = {r.id: r.status for r in session.execute(ledger.SETTLE, {**columns, "now": now})}
    for (row, decision), event_id in zip(decisions, columns["event_ids"], strict=True):
        status = settled.get(row.id)
        if status is None:
            results[row.id] = "raced"
            continue
        results[row.id] = status
        done.event(status, row, decision.reason)
        if status in WEBHOOK_EVENTS:  # a message failed before any hand-off is owed to customer webhooks
            done.webhooks.append(event_id)
        log.info(f"message_{status}", message_id=str(row.id), reason=decision.reason, until=str(decision.not_before))


def _writer(ctx: Context, row: Row[Any]) -> Personalizer:
    writer = ctx.personalizer(row.openai_secret)
    if (row.ai or {}).get("enabled") is False and writer.client is not None:
        return ctx.personalizer(None)
    return writer


def _request(row: Row[Any], variant: Mapping[str, Any] | None) -> Request:
    """What the writer works from: the brand, the lead, the step's (or its A/B variant's) templates."""
    brand = {
        "name": row.brand_name,
        "website": row.website,
        "description": row.description,
        "value_proposition": row.value_proposition,
        "target_audience": row.target_audience,
        "tone_of_voice": row.tone_of_voice,
        "proof_points": row.proof_points or [],
        "forbidden_claims": row.forbidden_claims or [],
        "email_signature": row.email_signature,
        "sms_signoff": row.sms_signoff,
        "postal_address": row.postal_address,
    }
    lead = {
        "first_name": row.first_name,
        "last_name": row.last_name,
        "company": row.company,
        "title": row.title,
        "timezone": row.lead_timezone,
        "email": row.email,
        "phone": row.phone,
        "custom_fields": row.custom_fields or {},
    }
    chosen = variant or {}
    templates = {
        "subject": chosen.get("subject_template") or row.subject_template,
        "body": chosen.get("body_template") or row.body_template,
        "sms": chosen.get("sms_template") or row.sms_template,
        "script": chosen.get("script_template") or row.script_template,
    }
    opt_out = {"email": row.opt_out_email, "sms": row.opt_out_sms, "voicemail": row.opt_out_voicemail}[row.channel]
    ai = row.ai or {}
    step_instructions = chosen.get("ai_instructions") or row.ai_instructions
    instructions = "\n".join(p for p in (ai.get("instructions"), step_instructions) if p) or None
    return Request(
        channel=row.channel,
        brand=brand,
        lead=lead,
        templates=templates,
        instructions=instructions,
        sender_name=row.from_name,
        opt_out=opt_out,
        model=ai.get("model"),
    )


def _freeze(session: Session, items: Sequence[Item], now: datetime) -> None:
    """Write the audit rows of ``items`` in one statement; adopt the content a concurrent execution froze first."""
    if not items:
        return
    drafts = [(i.row, i.draft) for i in items if i.draft is not None]
    params: dict[str, Any] = {
        "org_ids": [r.org_id for r, _ in drafts],
        "message_ids": [r.id for r, _ in drafts],
        "enrollment_ids": [r.enrollment_id for r, _ in drafts],
        "step_ids": [r.step_id for r, _ in drafts],
        "channels": [r.channel for r, _ in drafts],
        "sources": [d.source for _, d in drafts],
        "models": [d.model[:100] for _, d in drafts],
        "prompts": [json.dumps(d.prompt) for _, d in drafts],
        "inputs": [json.dumps(d.input) for _, d in drafts],
        "outputs": [json.dumps(d.output) if d.output is not None else None for _, d in drafts],
        "contents": [json.dumps(d.content) for _, d in drafts],
        "fallback_reasons": [d.fallback_reason[:200] if d.fallback_reason else None for _, d in drafts],
        "prompt_tokens": [d.prompt_tokens for _, d in drafts],
        "completion_tokens": [d.completion_tokens for _, d in drafts],
        "costs": [Decimal(str(d.cost_usd)) for _, d in drafts],
        "latencies": [d.latency_ms for _, d in drafts],
        "prompt_version": PROMPT_VERSION,
        "now": now,
    }
    written = {r.message_id for r in session.execute(ledger.FREEZE, params)}
    lost = [i for i in items if i.row.id not in written]
    if not lost:
        return
    # A concurrent execution froze its content first: send exactly that.
    frozen = {
        (r.enrollment_id, r.step_id): r.content
        for r in session.execute(
            ledger.FROZEN, {"prompt_version": PROMPT_VERSION, "enrollments": [i.row.enrollment_id for i in lost]}
        )
    }
    for item in lost:
        content = frozen.get((item.row.enrollment_id, item.row.step_id))
        if content is not None and item.draft is not None:
            item.draft.content = dict(content)


# --------------------------------------------------------------------------- step by step


@contextmanager
def _autocommit(ctx: Context) -> Iterator[Connection]:
    """One pooled connection for a batch's steps: each step is one statement, committed on its own."""
    with (
        ctx.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn,
        system_role(conn) as scoped,
    ):
        yield scoped


def _deliver(ctx: Context, items: Sequence[Item], results: dict[uuid.UUID, str], done: Announcements) -> None:
    """Claim, hand off and record each message in turn: one statement and one commit per message."""
    if not items:
        return
    try:
        with _autocommit(ctx) as conn:
            _deliver_on(ctx, conn, items, results, done)
    finally:
        # Whatever was not recorded by now (a failed commit) is left to its lease: it runs out and
        # the message becomes unknown, as a dead worker's would.
        ctx.release_claim(*(item.row.id for item in items))


def _deliver_on(
    ctx: Context, conn: Connection, items: Sequence[Item], results: dict[uuid.UUID, str], done: Announcements
) -> None:
    pending: Record | None = None
    started = ctx.now()
    for item in items:
        row = item.row
        now = ctx.now()
        if now - started > RECHECK_AFTER:
            decision = check_time(item.facts, now)
            if decision.verdict is not Verdict.SEND:
                _step(ctx, conn, pending, None, done)
                pending = None
                with system_session(ctx.engine) as session:
                    _settle(session, [(row, decision)], now, results, done)
                continue
        try:
            outgoing = _outgoing(ctx, item)
        except Exception as exc:  # a broken message must not block the rest of the batch
            log.exception("message_failed_before_claim", message_id=str(row.id), error=type(exc).__name__)
            results[row.id] = "error"
            continue
        if ctx.before_claim is not None:
            ctx.before_claim(row)
        if outgoing.begin is None:
            attempt = _step(ctx, conn, pending, (item, outgoing), done)
            handoff = Handoff(outgoing.send)
        else:
            attempt, handoff = _claim_while_opening(ctx, conn, pending, item, outgoing, done)
        pending = None
        if attempt is None:
            results[row.id] = "already_claimed"
            continue
        try:
            if ctx.before_send is not None:
                ctx.before_send(row)
            result = handoff.finish()
        except BaseException as exc:
            handoff.abort()  # a send never finished is given up (a finished one is not touched)
            # A timeout, a kill signal turned exception, or a bug mid-send: the provider may have it.
            record = _record(ctx, row, attempt, SendResult.unknown("worker_error", repr(exc)), ctx.now())
            results[row.id] = "unknown"
            if not isinstance(exc, Exception) or isinstance(exc, BaseTimeoutException):
                try:
                    _step(ctx, conn, record, None, done)
                except Exception:  # the lease turns it unknown anyway; keep the original error
                    log.exception("message_unknown_not_recorded", message_id=str(row.id))
                raise
            log.exception("message_send_crashed", message_id=str(row.id), error=type(exc).__name__)
            pending = record
            continue
        pending = _record(ctx, row, attempt, result, ctx.now())
        results[row.id] = "retry" if pending.status == "queued" else pending.status
    _step(ctx, conn, pending, None, done)


def _outgoing(ctx: Context, item: Item) -> Outgoing:
    """Build what goes out for ``item`` on its channel (``outgoing.build``)."""
    assert item.draft is not None
    variant = str(item.variant["key"])[:32] if item.variant and item.variant.get("key") else None
    return outgoing.build(ctx, item.row, item.draft, variant)


def _claim_while_opening(
    ctx: Context, conn: Connection, record: Record | None, item: Item, outgoing: Outgoing, done: Announcements
) -> tuple[int | None, Handoff]:
    """Commit the claim (and the previous record) while the provider conversation runs up to the hand-off.

    The claim statement goes to PostgreSQL on the context's step thread while this thread
    speaks SMTP up to the 354 reply to DATA: nothing is handed off before the final ".", which
    the caller sends (``finish``) only once the claim has committed. An opened send whose claim
    was not granted, or failed, is aborted, never finished. An error while opening is kept for
    ``finish`` to raise, so the caller treats it as it treats a crash mid-send.
    """
    assert outgoing.begin is not None
    claim = ctx.step_thread().submit(_step, ctx, conn, record, (item, outgoing), done)
    error: BaseException | None = None
    try:
        opened = outgoing.begin()
    except BaseException as exc:  # kept for finish(); a timeout or signal is re-raised below at the latest
        error = exc
    finally:
        futures.wait([claim])  # the statement is over before the connection is used again
    handoff = (
        Handoff(partial(_reraise, error))
        if error is not None
        else opened
        if isinstance(opened, Handoff)
        else Handoff.failed(opened)
    )
    if claim.exception() is not None or claim.result() is None:
        handoff.abort()
        if error is not None and (not isinstance(error, Exception) or isinstance(error, BaseTimeoutException)):
            raise error
    return claim.result(), handoff  # raises the claim's error, as the plain path does


def _reraise(error: BaseException) -> SendResult:
    raise error


def _record(ctx: Context, row: Row[Any], attempt: int, result: SendResult, now: datetime) -> Record:
    """Classify a hand-off's result into the ledger state, event, consequences and next step."""
    settings = ctx.settings
    if result.outcome is Outcome.RETRY and attempt < settings.send_max_attempts:
        delay = min(settings.retry_max_seconds, settings.retry_base_seconds * 2 ** (attempt - 1))
        delay *= 0.5 + random.random()  # noqa: S311 - jitter, not security
        log.info("message_retry_scheduled", message_id=str(row.id), code=result.code, attempt=attempt)
        return Record(row, attempt, "queued", result, next_attempt_at=now + timedelta(seconds=delay))
    status, event = {
        Outcome.SENT: ("sent", "sent"),
        Outcome.UNKNOWN: ("unknown", None),
        Outcome.PERMANENT: ("failed", "failed"),
        Outcome.RETRY: ("failed", "failed"),
    }[result.outcome]
    record = Record(row, attempt, status, result, event=event)
    rules = row.stop_rules or {}
    if row.channel == "email" and result.code in ("smtp_550", "smtp_551", "smtp_553"):
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
                    source=f"smtp:{result.code}",
                )
            )
            if rules.get("on_bounce"):
                record.stop_reason = "bounced"
    twilio_code = (result.code or "").removeprefix("twilio_")
    if twilio_code.isdigit() and int(twilio_code) in OPTED_OUT_CODES and row.phone:
        record.suppress.append(
            suppress_statement(
                org_id=row.org_id, channel="sms", kind="phone", value=row.phone, reason="stop", source="twilio:21610"
            )
        )
        if rules.get("on_unsubscribe", True):
            record.stop_reason = "unsubscribed"
    if record.stop_reason is None and record.status != "unknown":
        # An unknown outcome holds the enrollment on this step until an operator resolves the
        # message (libs.ledger: delivered or failed move it on, a resend sends it once more).
        record.action, record.due = _next_step(row, now)
    return record


def _step_params(
    ctx: Context, now: datetime, record: Record | None, claim: tuple[Item, Outgoing] | None
) -> dict[str, Any]:
    params: dict[str, Any] = {"now": now, "r_id": None, "r_attempt": None, "r_status": None, "r_provider": None}
    params.update(r_code=None, r_detail=None, r_next_attempt=None, r_event_id=None, r_event=None, r_event_data=None)
    params.update(r_position=None, r_due=None, r_action=None)
    params.update(c_id=None, c_lease=None, c_subject=None, c_body=None, c_variant=None, c_urls=[])
    if record is not None:
        result = record.result
        data = {"provider_id": result.provider_id} if result.provider_id else {"code": result.code}
        params.update(
            r_id=record.row.id,
            r_attempt=record.attempt,
            r_status=record.status,
            r_provider=result.provider_id,
            r_code=result.code,
            r_detail=result.detail,
            r_next_attempt=record.next_attempt_at,
            r_event_id=record.event_id,
            r_event=record.event,
            r_event_data=json.dumps(data),
            r_position=record.row.position,
            r_due=record.due,
            r_action=record.action,
        )
    if claim is not None:
        item, outgoing = claim
        params.update(
            c_id=item.row.id,
            c_lease=now + timedelta(seconds=ctx.lease_seconds()),
            c_subject=outgoing.subject,
            c_body=outgoing.body,
            c_variant=outgoing.variant,
            c_urls=outgoing.urls,
        )
    return params


def _step(
    ctx: Context,
    conn: Connection,
    record: Record | None,
    claim: tuple[Item, Outgoing] | None,
    done: Announcements,
) -> int | None:
    """Record ``record`` and claim ``claim`` in one statement and one commit; return the claimed attempt."""
    if record is None and claim is None:
        return None
    now = ctx.now()
    params = _step_params(ctx, now, record, claim)
    if record is not None and (record.suppress or record.stop_reason is not None):
        # A bounce or a carrier opt-out: suppress and stop in the same transaction as the record.
        with system_session(ctx.engine) as session:
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
    if answer.claimed_attempt is None:
        return None
    assert claim is not None
    ctx.hold_claim(claim[0].row.id, int(answer.claimed_attempt))
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


def _orphaned(ctx: Context, session: Session, row: Row[Any], now: datetime, done: Announcements) -> str:
    """A claim whose holder is gone: the provider may have the message, so it becomes unknown (never resent)."""
    lost = SendResult.unknown("claim_lost", "found in sending after its claim expired")
    record = _record(ctx, row, row.attempt, lost, now)
    answer = session.execute(ledger.STEP, _step_params(ctx, now, record, None)).one()
    if answer.recorded:
        done.event("unknown", row, "claim_lost")
    return "unknown"
