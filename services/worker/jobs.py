"""The job functions RQ runs: gate, personalize, claim, send, record, schedule the next step.

Delivery guarantee: **at most once per message, and never silently lost**. A job may run
twice (RQ ``unique`` ids do not stop a second execution, a repair may re-enqueue, a killed
worker's job may be retried); the conditional claim lets exactly one execution hand the
message to a provider. Errors known to happen before the hand-off put the message back in
the ledger with a next-attempt time (PostgreSQL is the scheduler: RQ's own scheduler can
enqueue twice and dies on a Redis error); anything that may have reached the provider ends
``unknown`` for an operator. Job-timeout exceptions are never swallowed.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import structlog
from redis import Redis
from rq.timeouts import BaseTimeoutException
from sqlalchemy import Engine
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from libs.crypto import SecretBox
from libs.db.base import utcnow
from libs.db.models.worker import Personalization
from libs.db.session import make_engine, system_session
from libs.links import LinkKind, sign_link
from libs.queue import JobSpec, QueueName, redis_from_url
from libs.schedule import Delay, ScheduleError, SendWindow, channel_window, next_send_time, zone
from libs.suppression import find_suppressed_sync, hash_key, normalize_email, suppress_statement
from services.worker import ledger
from services.worker.channels.email import OutgoingEmail, SmtpAccount, SmtpTransport, build_email
from services.worker.channels.outcome import Outcome, SendResult
from services.worker.channels.recorder import LocalRecorder
from services.worker.channels.twilio import (
    OPTED_OUT_CODES,
    OutgoingSms,
    OutgoingVoicemail,
    TwilioAccount,
    make_client,
    send_sms,
    send_voicemail,
)
from services.worker.gate import Decision, Facts, Verdict, check
from services.worker.personalize import Draft, Personalizer, Request, make_openai_client
from services.worker.personalize.prompt import PROMPT_VERSION
from services.worker.ratelimit import DAY, HOUR, MINUTE, Limit, RateLimiter
from services.worker.settings import WorkerSettings

log = structlog.get_logger(__name__)

SEND_FUNC = "services.worker.jobs.send_messages"
QUEUE_OF = {"email": QueueName.EMAIL, "sms": QueueName.SMS, "voicemail": QueueName.VOICEMAIL}
LEASE_MARGIN = timedelta(seconds=5)


@dataclass
class Context:
    """What one worker process keeps between jobs: pools, kept SMTP connections, provider clients."""

    settings: WorkerSettings
    engine: Engine
    redis: Redis
    box: SecretBox
    smtp: SmtpTransport
    limiter: RateLimiter
    recorder: LocalRecorder
    suppression_key: bytes
    twilio_clients: dict[tuple[str, str], Any] = field(default_factory=dict)
    personalizers: dict[str, Personalizer] = field(default_factory=dict)
    before_send: Callable[[Row[Any]], None] | None = None
    """Test hook called right before the provider call (fault injection), never set in production."""

    @classmethod
    def create(cls, settings: WorkerSettings) -> Context:
        """Build the process's context from ``settings``."""
        return cls(
            settings=settings,
            engine=make_engine(settings.database_url, pool_size=2),
            redis=redis_from_url(settings.redis_url),
            box=SecretBox.from_settings(settings),
            smtp=SmtpTransport(timeout=settings.smtp_timeout),
            limiter=RateLimiter(redis_from_url(settings.redis_url)),
            recorder=LocalRecorder(settings.data_dir),
            suppression_key=hash_key(settings.secret_key.get_secret_value()),
        )

    def now(self) -> datetime:
        """The worker's clock (shifted by ``clock_offset_seconds``, which tests use to move time)."""
        return utcnow() + timedelta(seconds=self.settings.clock_offset_seconds)

    def close(self) -> None:
        """Release connections."""
        self.smtp.close()
        self.engine.dispose()

    def personalizer(self, encrypted_key: str | None) -> Personalizer:
        """The organization's writer: OpenAI with its key, else the local writer."""
        if not encrypted_key:
            return self.personalizers.setdefault("", Personalizer(None, model=self.settings.openai_model))
        cached = self.personalizers.get(encrypted_key)
        if cached is None:
            client = make_openai_client(
                self.box.decrypt(encrypted_key),
                timeout=self.settings.openai_timeout,
                max_retries=self.settings.openai_max_retries,
                base_url=self.settings.openai_base_url,
            )
            cached = self.personalizers[encrypted_key] = Personalizer(client, model=self.settings.openai_model)
        return cached

    def twilio(self, sid: str, encrypted: str) -> Any:
        """The organization's Twilio client, with explicit timeouts."""
        key = (sid, encrypted)
        if key not in self.twilio_clients:
            account = TwilioAccount(sid, self.box.decrypt(encrypted))
            self.twilio_clients[key] = make_client(
                account, timeout=self.settings.twilio_timeout, base_url=self.settings.twilio_base_url
            )
        return self.twilio_clients[key]


_context: Context | None = None


def install(context: Context | None) -> None:
    """Set the process's context (the worker's main does, before it starts taking jobs)."""
    global _context
    _context = context


def context() -> Context:
    """The process's context, created from the environment on first use."""
    global _context
    if _context is None:
        _context = Context.create(WorkerSettings())
    return _context


def job_for(message_ids: Sequence[uuid.UUID | str], channel: str, settings: WorkerSettings, tag: str) -> JobSpec:
    """The RQ job that sends ``message_ids``: ids only, deterministic id, explicit timeout."""
    ids = [str(i) for i in message_ids]
    lease = settings.job_timeout * max(1, len(ids))
    return JobSpec(
        queue=QUEUE_OF[channel],
        func=SEND_FUNC,
        args=(ids,),
        job_id=f"msg_{ids[0]}_{len(ids)}_{tag}",
        timeout=lease,
        result_ttl=60,
    )


def send_messages(message_ids: list[str]) -> dict[str, str]:
    """Send each message at most once: gate, personalize, claim, send, record, schedule the next step."""
    ctx = context()
    results: dict[str, str] = {}
    for raw in message_ids:
        try:
            results[raw] = process(ctx, uuid.UUID(raw))
        except BaseTimeoutException:
            raise  # RQ's job timeout: never swallowed
        except Exception as exc:  # one broken message must not block the rest of the batch
            log.exception("message_failed_before_claim", message_id=raw, error=type(exc).__name__)
            results[raw] = "error"
    return results


def process(ctx: Context, message_id: uuid.UUID) -> str:
    """Run one message through the pipeline; return what happened to it."""
    now = ctx.now()
    with system_session(ctx.engine) as session:
        row = ledger.load(session, message_id, PROMPT_VERSION)
        if row is None:
            return "missing"  # rolled back, or erased: nothing to do
        if row.status in ledger.TERMINAL:
            return "done"
        if row.status == "sending":
            if row.next_attempt_at is not None and row.next_attempt_at > now:
                return "in_flight"  # another execution holds the claim
            return _orphaned(session, row, now)
        if row.next_attempt_at is not None and row.next_attempt_at > now:
            return "not_due"
        decision = _gate(ctx, session, row, now)
        if decision.verdict is Verdict.SKIP:
            return _skip(ctx, session, row, decision, now)
        if decision.verdict is Verdict.HOLD:
            return _hold(session, row, decision, now)
        writer = ctx.personalizer(row.openai_secret)
        attempt: int | None = None
        if row.cached_content is not None or writer.client is None:
            draft = _draft(writer, row)
            attempt = _claim(ctx, session, row, draft, now)
    if row.cached_content is None and writer.client is not None:
        draft = _draft(writer, row)  # the model is called outside any transaction
        with system_session(ctx.engine) as session:
            attempt = _claim(ctx, session, row, draft, ctx.now())
    if attempt is None:
        return "already_claimed"
    return _send_and_record(ctx, row, draft, attempt)


def _gate(ctx: Context, session: Session, row: Row[Any], now: datetime) -> Decision:
    stops = set(row.stop_events or ())
    rules = row.stop_rules or {}
    for event_type, rule in (("replied", "on_reply"), ("unsubscribed", "on_unsubscribe"), ("bounced", "on_bounce")):
        if event_type in stops and rules.get(rule, event_type != "bounced"):
            return Decision.skip(f"stopped_{event_type}")
    if "clicked" in stops and rules.get("on_click"):
        return Decision.skip("stopped_clicked")
    if row.sender_id is None:
        return Decision.skip("no_sender")
    hits = find_suppressed_sync(
        session, org_id=row.org_id, lead_ids=[row.lead_id], channel=row.channel, key=ctx.suppression_key
    )
    facts = Facts(
        channel=row.channel,
        campaign_status=row.campaign_status,
        enrollment_status=row.enrollment_status,
        lead_status="erased" if row.lead_status == "erased" else None,
        suppressed=bool(hits),
        email=row.email,
        phone=row.phone,
        lead_timezone=row.lead_timezone,
        consent_sms_at=row.consent_sms_at,
        consent_voice_at=row.consent_voice_at,
        campaign_timezone=row.campaign_timezone or "UTC",
        send_window=row.send_window,
    )
    decision = check(facts, now)
    if decision.verdict is not Verdict.SEND:
        return decision
    taken = ctx.limiter.take(_limits(ctx.settings, row), now)
    if not taken.allowed:
        assert taken.limit is not None
        assert taken.retry_at is not None
        return Decision.hold(
            f"cap_{taken.limit.name.split(':')[0]}_{taken.limit.name.rsplit(':', 1)[1]}", taken.retry_at
        )
    return decision


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


def _draft(writer: Personalizer, row: Row[Any]) -> Draft:
    if row.cached_content is not None:
        return Draft(row.channel, dict(row.cached_content), row.cached_source, "cached")
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
    templates = {
        "subject": row.subject_template,
        "body": row.body_template,
        "sms": row.sms_template,
        "script": row.script_template,
    }
    opt_out = {"email": row.opt_out_email, "sms": row.opt_out_sms, "voicemail": row.opt_out_voicemail}[row.channel]
    ai = row.ai or {}
    if ai.get("enabled") is False:
        writer = Personalizer(None, model=writer.model)
    instructions = "\n".join(p for p in (ai.get("instructions"), row.ai_instructions) if p) or None
    return writer.write(
        Request(
            channel=row.channel,
            brand=brand,
            lead=lead,
            templates=templates,
            instructions=instructions,
            sender_name=row.from_name,
            opt_out=opt_out,
            model=ai.get("model"),
        )
    )


def _claim(ctx: Context, session: Session, row: Row[Any], draft: Draft, now: datetime) -> int | None:
    """Freeze the content (audit row) and claim the message; None when another execution has it."""
    if row.cached_content is None:
        audit = Personalization(
            org_id=row.org_id,
            message_id=row.id,
            enrollment_id=row.enrollment_id,
            step_id=row.step_id,
            prompt_version=draft.prompt_version,
            channel=row.channel,
            source=draft.source,
            model=draft.model,
            prompt=draft.prompt,
            input=draft.input,
            output=draft.output,
            content=draft.content,
            fallback_reason=draft.fallback_reason,
            prompt_tokens=draft.prompt_tokens,
            completion_tokens=draft.completion_tokens,
            cost_usd=Decimal(str(draft.cost_usd)),
            latency_ms=draft.latency_ms,
        )
        try:
            with session.begin_nested():
                session.add(audit)
                session.flush()
        except IntegrityError:
            # A concurrent execution froze its content first: send exactly that.
            cached = ledger.load(session, row.id, PROMPT_VERSION)
            if cached is None or cached.cached_content is None:
                return None
            draft.content = dict(cached.cached_content)
    lease = now + timedelta(seconds=ctx.settings.job_timeout) + LEASE_MARGIN
    claimed = session.execute(
        ledger.CLAIM, {"id": row.id, "lease": lease, "subject": draft.subject, "body": draft.body, "now": now}
    ).first()
    return None if claimed is None else int(claimed.attempt)


def _send_and_record(ctx: Context, row: Row[Any], draft: Draft, attempt: int) -> str:
    try:
        if ctx.before_send is not None:
            ctx.before_send(row)
        result = _send(ctx, row, draft)
    except BaseException as exc:
        # A timeout, a kill signal turned exception, or a bug mid-send: the provider may have it.
        with system_session(ctx.engine) as session:
            session.execute(
                ledger.MARK_UNKNOWN_IF_SENDING,
                {
                    "id": row.id,
                    "attempt": attempt,
                    "code": "worker_error",
                    "detail": repr(exc)[:1000],
                    "now": ctx.now(),
                },
            )
        raise
    return _record(ctx, row, attempt, result)


def _send(ctx: Context, row: Row[Any], draft: Draft) -> SendResult:
    settings = ctx.settings
    if row.channel == "email":
        token = sign_link(settings.secret_key.get_secret_value(), LinkKind.UNSUBSCRIBE, row.id)
        email = OutgoingEmail(
            message_id=str(row.id),
            from_address=row.from_address,
            from_name=row.from_name,
            reply_to=row.reply_to,
            to_address=row.email,
            subject=draft.subject or row.brand_name,
            body=draft.body,
            postal_address=row.postal_address or "",
            unsubscribe_url=f"{settings.public_base_url.rstrip('/')}/u/{token}",
            brand_name=row.brand_name,
            signature=row.email_signature,
            opt_out_text=row.opt_out_email,
        )
        if row.smtp_host:
            password = ctx.box.decrypt(row.smtp_password_encrypted) if row.smtp_password_encrypted else None
            account = SmtpAccount(
                row.smtp_host, row.smtp_port or 587, row.smtp_security or "starttls", row.smtp_username, password
            )
        else:
            account = SmtpAccount(settings.smtp_sink_host, settings.smtp_sink_port)
        return ctx.smtp.send(account, build_email(email), mail_from=row.from_address, rcpt_to=row.email)
    callback = f"{settings.public_base_url.rstrip('/')}/hooks/twilio/{'sms' if row.channel == 'sms' else 'voice'}"
    callback += f"/status?message_id={row.id}"
    if row.channel == "sms":
        text = draft.body
        if row.sms_signoff and row.sms_signoff not in text:
            text = f"{text} {row.sms_signoff}".strip()
        if row.twilio_sid and row.twilio_secret:
            sms = OutgoingSms(str(row.id), row.phone, text, callback, row.phone_number, row.messaging_service_sid)
            return send_sms(ctx.twilio(row.twilio_sid, row.twilio_secret), sms)
        return ctx.recorder.record("sms", str(row.id), {"to": row.phone, "from": row.phone_number, "body": text})
    drop = OutgoingVoicemail(
        str(row.id),
        row.phone,
        row.phone_number,
        draft.body,
        callback,
        voice=row.tts_voice,
        audio_url=row.step_audio_url or row.sender_audio_url,
    )
    if row.twilio_sid and row.twilio_secret:
        return send_voicemail(ctx.twilio(row.twilio_sid, row.twilio_secret), drop)
    return ctx.recorder.record(
        "voicemail", str(row.id), {"to": row.phone, "from": row.phone_number, "script": drop.script}
    )


def _record(ctx: Context, row: Row[Any], attempt: int, result: SendResult) -> str:
    now = ctx.now()
    with system_session(ctx.engine) as session:
        if result.outcome is Outcome.RETRY and attempt < ctx.settings.send_max_attempts:
            delay = min(ctx.settings.retry_max_seconds, ctx.settings.retry_base_seconds * 2 ** (attempt - 1))
            delay *= 0.5 + random.random()  # noqa: S311 - jitter, not security
            session.execute(
                ledger.RECORD,
                {
                    "id": row.id,
                    "attempt": attempt,
                    "status": "queued",
                    "provider_id": None,
                    "code": result.code,
                    "detail": result.detail,
                    "next_attempt_at": now + timedelta(seconds=delay),
                    "now": now,
                },
            )
            log.info("message_retry_scheduled", message_id=str(row.id), code=result.code, attempt=attempt)
            return "retry"
        status, event_type = {
            Outcome.SENT: ("sent", "sent"),
            Outcome.UNKNOWN: ("unknown", None),
            Outcome.PERMANENT: ("failed", "failed"),
            Outcome.RETRY: ("failed", "failed"),
        }[result.outcome]
        bounced = row.channel == "email" and result.code in ("smtp_550", "smtp_551", "smtp_553")
        if bounced:
            status, event_type = "bounced", "bounced"
        recorded = session.execute(
            ledger.RECORD,
            {
                "id": row.id,
                "attempt": attempt,
                "status": status,
                "provider_id": result.provider_id,
                "code": result.code,
                "detail": result.detail,
                "next_attempt_at": None,
                "now": now,
            },
        ).first()
        if recorded is None:
            log.warning("message_record_lost_race", message_id=str(row.id), outcome=result.outcome.value)
            return "raced"
        if event_type:
            data = {"provider_id": result.provider_id} if result.provider_id else {"code": result.code}
            ledger.event(session, row, event_type, now, json.dumps(data))
        stopped = _consequences(ctx, session, row, result, bounced, now)
        if not stopped:
            _advance(session, row, now)
    log.info("message_recorded", message_id=str(row.id), status=status, channel=row.channel, code=result.code)
    return status


def _consequences(
    ctx: Context, session: Session, row: Row[Any], result: SendResult, bounced: bool, now: datetime
) -> bool:
    """Suppress and stop on bounces and opt-outs; return whether the enrollment was stopped."""
    rules = row.stop_rules or {}
    if bounced and row.email:
        session.execute(
            suppress_statement(
                org_id=row.org_id,
                channel="email",
                kind="email",
                value=row.email_normalized or normalize_email(row.email),
                reason="bounce",
                source=f"smtp:{result.code}",
            )
        )
        if rules.get("on_bounce"):
            session.execute(ledger.STOP, {"id": row.enrollment_id, "reason": "bounced", "now": now})
            return True
    twilio_code = (result.code or "").removeprefix("twilio_")
    if twilio_code.isdigit() and int(twilio_code) in OPTED_OUT_CODES and row.phone:
        session.execute(
            suppress_statement(
                org_id=row.org_id, channel="sms", kind="phone", value=row.phone, reason="stop", source="twilio:21610"
            )
        )
        if rules.get("on_unsubscribe", True):
            session.execute(ledger.STOP, {"id": row.enrollment_id, "reason": "unsubscribed", "now": now})
            return True
    return False


def _advance(session: Session, row: Row[Any], now: datetime) -> None:
    """Point the enrollment at its next step (due after the delay, in the next open window) or complete it."""
    if row.next_step_id is None:
        session.execute(
            ledger.ADVANCE,
            {"id": row.enrollment_id, "position": row.position, "next_due_at": None, "finished": True, "now": now},
        )
        return
    try:
        tz = zone(row.lead_timezone or row.campaign_timezone, default=row.campaign_timezone or "UTC")
    except ScheduleError:
        tz = zone("UTC")
    try:
        window = channel_window(SendWindow.from_json(row.send_window), row.next_channel)
        delay = Delay(row.next_delay_minutes, row.next_delay_unit or "minutes", bool(row.next_business_days))
        due = next_send_time(now, delay, window, tz)
    except ScheduleError:
        due = now + timedelta(minutes=row.next_delay_minutes or 0)
    session.execute(
        ledger.ADVANCE,
        {"id": row.enrollment_id, "position": row.position, "next_due_at": due, "finished": False, "now": now},
    )


def _skip(ctx: Context, session: Session, row: Row[Any], decision: Decision, now: datetime) -> str:
    done = session.execute(
        ledger.SET_STATE,
        {
            "id": row.id,
            "status": "skipped",
            "reason": (decision.reason or "")[:64],
            "next_attempt_at": None,
            "now": now,
        },
    ).first()
    if done is not None and row.enrollment_status in ("active", "paused") and not decision.reason.startswith("stopped"):  # type: ignore[union-attr]
        _advance(session, row, now)
    elif done is not None and decision.reason and decision.reason.startswith("stopped_"):
        session.execute(ledger.STOP, {"id": row.enrollment_id, "reason": decision.reason[8:], "now": now})
    log.info("message_skipped", message_id=str(row.id), reason=decision.reason)
    return "skipped"


def _hold(session: Session, row: Row[Any], decision: Decision, now: datetime) -> str:
    done = session.execute(
        ledger.SET_STATE,
        {
            "id": row.id,
            "status": "held",
            "reason": (decision.reason or "")[:64],
            "next_attempt_at": decision.not_before,
            "now": now,
        },
    ).first()
    if done is not None:
        data = json.dumps(
            {"reason": decision.reason, "until": decision.not_before.isoformat() if decision.not_before else None}
        )
        ledger.event(session, row, "held", now, data)
    log.info("message_held", message_id=str(row.id), reason=decision.reason, until=str(decision.not_before))
    return "held"


def _orphaned(session: Session, row: Row[Any], now: datetime) -> str:
    """A claim whose holder is gone: the provider may have the message, so it becomes unknown."""
    done = session.execute(
        ledger.MARK_UNKNOWN_IF_SENDING,
        {
            "id": row.id,
            "attempt": row.attempt,
            "code": "claim_lost",
            "detail": "found in sending after its claim expired",
            "now": now,
        },
    ).first()
    if done is not None:
        _advance(session, row, now)
    return "unknown"
