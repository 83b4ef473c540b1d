"""RQ jobs of the ``inbound`` queue: they take ids, re-read state, and are safe to run twice.

Each job opens one system transaction, applies the rules, commits, and only then enqueues
what the rules asked for (webhook deliveries). Settings come from the environment
(``SDR_*``), as for every worker process.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from datetime import timedelta
from functools import cache
from typing import TypeVar

import structlog
from redis import Redis
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from libs.db.base import utcnow
from libs.db.session import make_engine, system_session
from libs.queue import QueueName, enqueue_many, get_queue, redis_from_url
from libs.suppression import stored_hash_key
from services.campaign.inbound import erased, service
from services.campaign.inbound import repository as repo
from services.campaign.inbound.mail import MalformedMail, read
from services.campaign.inbound.service import Context, Effects
from services.campaign.inbound.settings import InboundSettings
from services.campaign.inbound.webhooks import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    UnsafeUrl,
    check_url,
    post,
    sign,
)

log = structlog.get_logger(__name__)
T = TypeVar("T")


_OPEN: dict[str, set[str]] = {"engines": set(), "redis": set()}


@cache
def _engine(url: str) -> Engine:
    _OPEN["engines"].add(url)
    return make_engine(url, pool_size=2)


@cache
def _redis(url: str) -> Redis:
    _OPEN["redis"].add(url)
    return redis_from_url(url)


def _run(work: Callable[[Session, Context, Effects], T]) -> T:
    settings = InboundSettings()
    engine = _engine(settings.database_url)
    ctx = Context.from_settings(settings, suppression_key=stored_hash_key(engine, settings))
    effects = Effects()
    with system_session(engine) as session:
        result = work(session, ctx, effects)
    if effects.jobs:
        enqueue_many(_redis(settings.redis_url), effects.jobs)
    return result


def process_twilio_status(event_id: str) -> str:
    """Apply a stored Twilio message or call status callback (at least once; a second run is a no-op)."""
    return _run(lambda s, ctx, fx: service.process_status(s, ctx, fx, uuid.UUID(event_id)))


def process_inbound_sms(event_id: str) -> str:
    """Apply a stored inbound text that is a plain reply (at least once; a second run is a no-op)."""
    return _run(lambda s, ctx, fx: service.process_sms_event(s, ctx, fx, uuid.UUID(event_id)))


def process_inbound_email(event_id: str) -> str:
    """Apply a stored inbound email: reply, bounce or auto-reply (at least once; a second run is a no-op).

    An email about an erased person is stored without its MIME: only its kind and DSN status are acted on.
    """

    def work(session: Session, ctx: Context, effects: Effects) -> str:
        event = repo.get_event(session, uuid.UUID(event_id))
        if event is None:
            return "missing"
        if event.raw is None:
            # Stored without its content because it is about an erased person (or erased since it came).
            if event.payload.get(erased.ERASED):
                return service.process_erased_email(session, effects, event.id)
            return "missing"
        try:
            mail = read(bytes(event.raw))
        except MalformedMail as exc:
            repo.finish_event(
                session, event.id, status="failed", outcome="malformed", processed_at=utcnow(), error=str(exc)
            )
            return "malformed"
        return service.process_email(session, ctx, effects, event.id, mail)

    return _run(work)


def publish_message_event(event_id: str) -> int:
    """Owe a recorded message event (``sent``, ``failed``... written by the worker) to customer endpoints."""
    return _run(lambda s, ctx, fx: service.publish(s, fx, event_id=uuid.UUID(event_id)))


def deliver_webhook(delivery_id: str) -> str:
    """Make one signed attempt of a webhook delivery, log it, and schedule the next on failure.

    At least once: a receiver may see the same ``Tidewater-Delivery`` twice (a crash after its
    2xx and before our commit) and should dedupe on it. A delivered or failed delivery is left alone.
    """
    settings = InboundSettings()
    engine = _engine(settings.database_url)
    ctx = Context.from_settings(settings, suppression_key=stored_hash_key(engine, settings))
    with system_session(engine) as session:
        row = repo.delivery_with_endpoint(session, uuid.UUID(delivery_id))
        if row is None or row.status != "pending":
            return "skipped"
        number = row.attempts + 1
        started_at = utcnow()
        if not row.active:
            repo.update_delivery(
                session, row.id, status="failed", last_error="endpoint disabled", updated_at=started_at
            )
            return "endpoint_disabled"
        body = _body(row.payload)
        secret = ctx.box.decrypt(row.secret_encrypted, associated_data=row.endpoint_id.bytes)
        try:
            target = check_url(row.url, allow_private=settings.webhooks_allow_private)
        except UnsafeUrl as exc:
            ok, status_code, duration = False, None, 0
            error: str | None = f"refused: {exc}"
            excerpt: str | None = None
        else:
            timestamp = int(started_at.timestamp())
            headers = {
                "Content-Type": "application/json",
                "User-Agent": "Tidewater-Webhooks/1",
                SIGNATURE_HEADER: sign(secret, timestamp, body),
                EVENT_HEADER: row.event_type,
                DELIVERY_HEADER: str(row.id),
            }
            result = post(target, body=body, headers=headers, timeout=settings.webhook_timeout)
            ok, status_code, error = result.ok, result.status_code, result.error
            excerpt, duration = result.excerpt, result.duration_ms
        repo.record_attempt(
            session,
            org_id=row.org_id,
            delivery_id=row.id,
            number=number,
            started_at=started_at,
            duration_ms=duration,
            status_code=status_code,
            error=error,
            response_excerpt=excerpt,
        )
        now = utcnow()
        delay: float | None = None
        values: dict[str, object]
        if ok:
            outcome, values = "delivered", {"status": "delivered", "delivered_at": now, "next_attempt_at": None}
        elif number >= settings.webhook_max_attempts:
            outcome, values = "failed", {"status": "failed", "next_attempt_at": None}
        else:
            delay = backoff(number, base=settings.webhook_backoff_base, cap=settings.webhook_backoff_max)
            outcome, values = "retry", {"next_attempt_at": now + timedelta(seconds=delay)}
        repo.update_delivery(
            session,
            row.id,
            attempts=number,
            last_status_code=status_code,
            last_error=None if ok else error,
            updated_at=now,
            **values,
        )
    log.info("webhook_attempt", delivery_id=delivery_id, attempt=number, outcome=outcome, status_code=status_code)
    if delay is not None and delay <= 0:
        queue = get_queue(QueueName.INBOUND, _redis(settings.redis_url))
        job_id = f"webhook-{delivery_id}-{number + 1}"
        queue.enqueue(f"{__name__}.deliver_webhook", delivery_id, job_id=job_id, job_timeout=60, result_ttl=60)
    # A later attempt is scheduled by ``next_attempt_at`` alone: the worker's ticker enqueues it when due
    # (no RQ scheduler, which can enqueue a job twice and exits on a Redis error).
    return outcome


def backoff(attempt: int, *, base: float, cap: float) -> float:
    """Seconds before attempt ``attempt + 1``: exponential from ``base``, capped, with up to 10% jitter."""
    if base <= 0:
        return 0.0
    delay = min(cap, base * (2 ** (attempt - 1)))
    return delay + random.uniform(0, delay / 10)  # noqa: S311 - jitter, not a secret


def _body(payload: dict[str, object]) -> bytes:
    import json

    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()


def dispose() -> None:
    """Close the cached engines and Redis clients (process shutdown, tests)."""
    for engine_url in list(_OPEN["engines"]):
        _engine(engine_url).dispose()
    for redis_url in list(_OPEN["redis"]):
        _redis(redis_url).close()
    _engine.cache_clear()
    _redis.cache_clear()
    _OPEN["engines"].clear()
    _OPEN["redis"].clear()
