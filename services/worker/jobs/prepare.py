"""Load, gate, settle and freeze: a batch made ready to send, in one transaction (two with a model).

One query loads every message as a typed :class:`~services.worker.ledger.LoadedRow`; rows that
are done, in flight, orphaned or not due are answered at once; one query per organization checks
suppressions and the pure gate decides; the Redis caps are taken in one pipeline; every skip and
hold is written by one ``SETTLE``; and the content of every sendable message is written and frozen
in the audit table by one ``FREEZE`` (a concurrent execution's content wins, and is what goes
out). In review mode the messages that need a person's approval are then put aside
(:mod:`services.worker.jobs.review`), and approved ones go out with their approved content.
Model calls, when an organization has an OpenAI key, happen outside any transaction, between the
load and the freeze.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

import structlog
from sqlmodel import Session

from libs import templating
from libs.db.models.brand import ramp
from libs.db.session import system_session
from libs.deliverability import sending_domain
from libs.ledger import next_step
from libs.ledger.states import AWAITING_REVIEW
from libs.suppression import find_suppressed_sync, has_erasure_hashes
from services.worker import ledger
from services.worker.gate import PAUSED_RECHECK, Decision, Facts, Verdict, check
from services.worker.jobs import review
from services.worker.jobs.announce import WEBHOOK_EVENTS, Announcements
from services.worker.jobs.context import Context
from services.worker.jobs.record import orphaned
from services.worker.ledger import LoadedRow
from services.worker.personalize import Draft, Personalizer, Request
from services.worker.personalize.prompt import PROMPT_VERSION
from services.worker.ratelimit import DAY, HOUR, MINUTE, Gap, Limit, recipient_provider
from services.worker.settings import WorkerSettings

log = structlog.get_logger(__name__)

Results = dict[uuid.UUID, str]
"""What happened to each message of a batch, by id."""
Settle = list[tuple[LoadedRow, Decision]]
"""The rows to skip or hold, with the gate's decision on each."""


@dataclass
class Item:
    """One sendable message of a batch: its loaded row, frozen draft and chosen variant."""

    row: LoadedRow
    facts: Facts
    writer: Personalizer
    variant: Mapping[str, Any] | None
    draft: Draft | None = None


def load_and_gate(ctx: Context, message_ids: Sequence[uuid.UUID], results: Results, done: Announcements) -> list[Item]:
    """Load, gate, skip or hold, and freeze the content of a batch; return what may be sent."""
    now = ctx.now()
    with system_session(ctx.engine) as session:
        rows = ledger.load_many(session, message_ids, PROMPT_VERSION)
        candidates = _assign(ctx, session, _triage(ctx, session, rows, now, results, done), now)
        settling, sendable = _gate(ctx, session, candidates, now, results)
        reviews = review.plan(session, [row for row, _ in sendable], now)
        aside = [(row, facts) for row, facts in sendable if row.id in reviews.needs]  # they take no send cap
        sendable = _take_caps(ctx, [(r, f) for r, f in sendable if r.id not in reviews.needs], now, settling) + aside
        if settling:
            settle(session, settling, now, results, done)
        items, later, refused = _items(ctx, sendable, results)
        if refused:
            settle(session, refused, now, results, done)
        _freeze(session, [i for i in items if i.row.cached_content is None], now)
        items = _reviewed(session, items, reviews, now, results)
    if later:
        items.extend(_write_later(ctx, later, reviews, results, done))
    return items


def _write_later(
    ctx: Context, later: list[Item], reviews: review.Plan, results: Results, done: Announcements
) -> list[Item]:
    """Write with the model outside any transaction, then settle the refused and freeze the written."""
    refused: Settle = []
    written = [item for item in later if _write(item, results, refused)]
    with system_session(ctx.engine) as session:
        if refused:
            settle(session, refused, ctx.now(), results, done)
        _freeze(session, written, ctx.now())
        return _reviewed(session, written, reviews, ctx.now(), results)


def _reviewed(session: Session, items: list[Item], reviews: review.Plan, now: datetime, results: Results) -> list[Item]:
    """Put aside the frozen items that need review; the approved ones go out with their approved content."""
    aside = [(i.row, i.draft.content, reviews.needs[i.row.id]) for i in items if i.row.id in reviews.needs and i.draft]
    moved = review.put_aside(session, aside, now)
    for item in items:
        if item.row.id in reviews.needs:
            results[item.row.id] = "awaiting_review" if item.row.id in moved else "raced"
        elif item.row.id in reviews.approved and item.draft is not None:
            item.draft.content = reviews.approved[item.row.id]
    return [i for i in items if i.row.id not in reviews.needs]


def _triage(
    ctx: Context, session: Session, rows: Sequence[LoadedRow], now: datetime, results: Results, done: Announcements
) -> list[LoadedRow]:
    """Answer at once for rows that are done, awaiting review, in flight, orphaned or not due; return the rest."""
    candidates: list[LoadedRow] = []
    for row in rows:
        if row.status in ledger.TERMINAL:
            results[row.id] = "done"
        elif row.status in AWAITING_REVIEW:
            results[row.id] = "awaiting_review"  # only a person's decision (or the deadline) moves it
        elif row.status == "sending":
            if row.next_attempt_at is not None and row.next_attempt_at > now:
                results[row.id] = "in_flight"  # another execution holds the claim
            else:
                results[row.id] = orphaned(ctx, session, row, now, done)
        elif row.next_attempt_at is not None and row.next_attempt_at > now:
            results[row.id] = "not_due"
        else:
            candidates.append(row)
    return candidates


def _gate(
    ctx: Context, session: Session, candidates: list[LoadedRow], now: datetime, results: Results
) -> tuple[Settle, list[tuple[LoadedRow, Facts]]]:
    """The gate's decision on each candidate: ``(to settle, sendable)``."""
    suppressed = _suppressed(ctx, session, candidates)
    settling: Settle = []
    sendable: list[tuple[LoadedRow, Facts]] = []
    for row in candidates:
        facts = _facts(row, row.id in suppressed)
        try:
            decision = _stop_rules(row, now) or check(facts, now)
        except Exception as exc:  # one broken message must not block the rest of the batch
            log.exception("message_gate_failed", message_id=str(row.id), error=type(exc).__name__)
            results[row.id] = "error"
            continue
        if decision.verdict is Verdict.SEND:
            sendable.append((row, facts))
        else:
            settling.append((row, decision))
    return settling, sendable


def _take_caps(
    ctx: Context, sendable: list[tuple[LoadedRow, Facts]], now: datetime, settling: Settle
) -> list[tuple[LoadedRow, Facts]]:
    """Take the Redis caps of the sendable rows in one pipeline; a row over a cap is held (added to ``settling``)."""
    if not sendable:
        return sendable
    taken = ctx.limiter.take_many(
        [_limits(ctx, row, now) for row, _ in sendable], now, [_gap(row) for row, _ in sendable]
    )
    allowed: list[tuple[LoadedRow, Facts]] = []
    for (row, facts), verdict in zip(sendable, taken, strict=True):
        if verdict.allowed:
            allowed.append((row, facts))
        else:
            assert verdict.limit is not None
            assert verdict.retry_at is not None
            name = verdict.limit.name
            settling.append(
                (row, Decision.hold(f"cap_{name.split(':')[0]}_{name.rsplit(':', 1)[1]}", verdict.retry_at))
            )
    return allowed


def _items(
    ctx: Context, sendable: list[tuple[LoadedRow, Facts]], results: Results
) -> tuple[list[Item], list[Item], Settle]:
    """The items to send: ``(written now, to write with the model outside the transaction, refused)``."""
    items: list[Item] = []
    later: list[Item] = []
    refused: Settle = []
    for row, facts in sendable:
        item = Item(
            row,
            facts,
            _writer(ctx, row),
            templating.choose_variant(row.enrollment_id, row.step_id, row.variants or []),
        )
        if row.cached_content is not None:
            assert row.cached_source is not None  # frozen content always has its source (NOT NULL)
            item.draft = Draft(row.channel, dict(row.cached_content), row.cached_source, "cached")
            items.append(item)
        elif item.writer.client is None:
            if _write(item, results, refused):
                items.append(item)
        else:
            later.append(item)
    return items, later, refused


def _write(item: Item, results: Results, refused: Settle) -> bool:
    """Personalize one message; a bug in one (the writer handles provider errors itself) spares the rest.

    A template over a render bound fails its message for good (added to ``refused``, with the
    bound as the reason): rendering it again would only hit the bound again.
    """
    try:
        item.draft = item.writer.write(request(item.row, item.variant))
    except templating.RenderLimitExceeded as exc:
        log.warning("message_template_refused", message_id=str(item.row.id), reason=exc.reason, detail=exc.message)
        refused.append((item.row, Decision.skip(exc.reason, status="failed")))
        return False
    except Exception as exc:
        log.exception("message_write_failed", message_id=str(item.row.id), error=type(exc).__name__)
        results[item.row.id] = "error"
        return False
    return True


def _suppressed(ctx: Context, session: Session, rows: Sequence[LoadedRow]) -> set[uuid.UUID]:
    """Ids of the messages whose lead is suppressed on the message's channel (one query per organization)."""
    groups: dict[tuple[uuid.UUID, str], list[LoadedRow]] = {}
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


def _facts(row: LoadedRow, suppressed: bool) -> Facts:
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


def _stop_rules(row: LoadedRow, now: datetime) -> Decision | None:
    """Skip when the lead already replied, unsubscribed, bounced (or clicked) and the campaign stops on it.

    With no sender to send from the step is skipped, unless the pool's senders are only paused: then it
    waits (``sender_paused``) until a member resumes one, rechecked every ``PAUSED_RECHECK``.
    """
    stops = set(row.stop_events or ())
    rules = row.stop_rules or {}
    for event_type, rule in (("replied", "on_reply"), ("unsubscribed", "on_unsubscribe"), ("bounced", "on_bounce")):
        if event_type in stops and rules.get(rule, event_type != "bounced"):
            return Decision.skip(f"stopped_{event_type}")
    if "clicked" in stops and rules.get("on_click"):
        return Decision.skip("stopped_clicked")
    if row.sender_id is None and row.pool_paused:
        return Decision.hold("sender_paused", now + PAUSED_RECHECK)
    if row.sender_id is None:
        return Decision.skip("no_sender")
    return None


def _daily_cap(settings: WorkerSettings, channel: str, sender: LoadedRow | Mapping[str, Any], now: datetime) -> int:
    """A sender's cap today: its daily limit (else the channel's default), ramped up from ``ramp_start``."""

    def get(name: str) -> Any:
        return sender[name] if isinstance(sender, Mapping) else getattr(sender, name)

    maximum = get("daily_limit") or (settings.email_daily_cap if channel == "email" else settings.sms_daily_cap)
    since = get("sender_since") or now
    return ramp(maximum, get("ramp_start"), get("ramp_step"), since, now)[1]


def _limits(ctx: Context, row: LoadedRow, now: datetime) -> list[Limit]:
    settings = ctx.settings
    sender = f"sender:{row.sender_id}"
    day = Limit(f"{sender}:day", _daily_cap(settings, row.channel, row, now), DAY)
    if row.channel == "email":
        limits = [Limit(f"{sender}:hour", row.hourly_limit or settings.email_hourly_cap, HOUR), day]
        domain = (row.email_normalized or row.email or "").rpartition("@")[2]
        if domain:
            limits.append(Limit(f"domain:{row.org_id}:{domain}:minute", settings.domain_pacing_per_minute, MINUTE))
            if row.provider_daily_caps:
                provider = recipient_provider(ctx.redis, domain, sending_domain.current())
                cap = row.provider_daily_caps.get(provider)
                if cap is not None:
                    limits.append(Limit(f"{sender}:{provider}_day", cap, DAY))
        return limits
    return [Limit(f"{sender}:hour", row.hourly_limit or settings.sms_hourly_cap, HOUR), day]


def _gap(row: LoadedRow) -> Gap | None:
    """The random pause the row's sender keeps between two sends, if it has one."""
    if row.min_gap_seconds is None or row.max_gap_seconds is None:
        return None
    return Gap(f"sender:{row.sender_id}:gap", row.min_gap_seconds, row.max_gap_seconds)


_KIND = {"email": "email", "sms": "sms"}
"""The sender kind of a channel (any other channel is spoken by a voice sender)."""


def _assign(ctx: Context, session: Session, rows: list[LoadedRow], now: datetime) -> list[LoadedRow]:
    """Give each row without a kept sender the pool's sender with the most room left today, and keep it.

    Room is the sender's cap today (ramped) less what it took today, less what this batch already
    gave it; ties go to the pool's oldest sender. An enrollment whose sender was paused, removed or
    left out of the pool is handed to another one: a ``sender_changed`` event on the lead's timeline
    names both.
    """
    needy = [r for r in rows if r.sender_id is None and r.pool_sender_ids]
    if not needy:
        return rows
    ids = sorted({i for r in needy for i in r.pool_sender_ids or ()})
    senders = {m["sender_id"]: dict(m) for m in session.execute(ledger.SENDERS, {"ids": ids}).mappings()}
    channel_of = {i: r.channel for r in needy for i in r.pool_sender_ids or ()}
    known = [i for i in ids if i in senders]
    used = ctx.limiter.used([Limit(f"sender:{i}:day", 0, DAY) for i in known], now)
    room = {
        i: _daily_cap(ctx.settings, channel_of[i], senders[i], now) - taken
        for i, taken in zip(known, used, strict=True)
    }
    chosen: dict[uuid.UUID, LoadedRow] = {}
    for row in needy:
        pool = [i for i in row.pool_sender_ids or () if i in room]
        if not pool:
            continue
        best = max(pool, key=lambda i: room[i])  # the first of equals: the pool's order
        room[best] -= 1
        chosen[row.id] = replace(row, **senders[best])
        if row.kept_sender_id is not None:
            log.info(
                "sender_handed_off",
                enrollment_id=str(row.enrollment_id),
                from_sender=str(row.kept_sender_id),
                to_sender=str(best),
            )
    handed = [(r, chosen[r.id]) for r in needy if r.kept_sender_id is not None and r.id in chosen]
    if handed:
        session.execute(
            ledger.HANDED_OFF,
            {
                "org_ids": [r.org_id for r, _ in handed],
                "message_ids": [r.id for r, _ in handed],
                "lead_ids": [r.lead_id for r, _ in handed],
                "campaign_ids": [r.campaign_id for r, _ in handed],
                "kinds": [_KIND.get(r.channel, "voice") for r, _ in handed],
                "from_ids": [r.kept_sender_id for r, _ in handed],
                "to_ids": [new.sender_id for _, new in handed],
                "now": now,
            },
        )
    if chosen:
        session.execute(
            ledger.ASSIGN,
            {
                "ids": [r.enrollment_id for r in chosen.values()],
                "kinds": [_KIND.get(r.channel, "voice") for r in chosen.values()],
                "senders": [r.sender_id for r in chosen.values()],
                "now": now,
            },
        )
    return [chosen.get(r.id, r) for r in rows]


_SETTLE_COLUMNS = ("ids", "statuses", "reasons", "next_at", "event_ids", "event_data", "actions", "positions", "due")


def settle(
    session: Session,
    decisions: Sequence[tuple[LoadedRow, Decision]],
    now: datetime,
    results: Results,
    done: Announcements,
) -> None:
    """Write every skip and hold of a batch in one statement (events, next step or stop included).

    A skip whose detail says ``status="failed"`` (a template over a render bound) is written as failed.
    """
    columns: dict[str, list[Any]] = {k: [] for k in _SETTLE_COLUMNS}
    for row, decision in decisions:
        for name, value in zip(_SETTLE_COLUMNS, _settle_values(row, decision, now), strict=True):
            columns[name].append(value)
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


def _settle_values(row: LoadedRow, decision: Decision, now: datetime) -> tuple[Any, ...]:
    """One row of ``SETTLE``'s columns (:data:`_SETTLE_COLUMNS`, in order) for one skip or hold."""
    reason = (decision.reason or "")[:64]
    held = decision.verdict is Verdict.HOLD
    action: str | None = None
    due: datetime | None = None
    if not held:
        if reason.startswith("stopped_"):
            action = "stop"
        else:
            action, due = next_step(row, now)
    until = decision.not_before.isoformat() if decision.not_before else None
    return (
        row.id,
        "held" if held else decision.detail.get("status", "skipped"),
        reason,
        decision.not_before if held else None,
        uuid.uuid4(),
        json.dumps({"reason": decision.reason, "until": until}),
        action,
        row.position,
        due,
    )


def _writer(ctx: Context, row: LoadedRow) -> Personalizer:
    writer = ctx.personalizer(row.openai_secret)
    if (row.ai or {}).get("enabled") is False and writer.client is not None:
        return ctx.personalizer(None)
    return writer


def request(row: LoadedRow, variant: Mapping[str, Any] | None) -> Request:
    """What the writer works from: the brand, the lead, the step's (or its A/B variant's) templates."""
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
        brand=_brand(row),
        lead=_lead(row),
        templates=templates,
        instructions=instructions,
        sender_name=row.from_name,
        opt_out=opt_out,
        model=ai.get("model"),
    )


def _brand(row: LoadedRow) -> dict[str, Any]:
    return {
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


def _lead(row: LoadedRow) -> dict[str, Any]:
    return {
        "first_name": row.first_name,
        "last_name": row.last_name,
        "company": row.company,
        "title": row.title,
        "timezone": row.lead_timezone,
        "email": row.email,
        "phone": row.phone,
        "custom_fields": row.custom_fields or {},
    }


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
    _adopt(session, [i for i in items if i.row.id not in written])


def _adopt(session: Session, lost: Sequence[Item]) -> None:
    """A concurrent execution froze its content first: send exactly that."""
    if not lost:
        return
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
