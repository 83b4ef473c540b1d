"""RQ jobs of customer webhooks (``inbound`` queue): owe a recorded event, make one signed attempt.

They take ids, re-read state, and are safe to run twice. Settings come from the environment
(``SDR_*``), as for every worker process. RQ stores them under
``services.campaign.inbound.jobs``, which re-exports them.
"""

from __future__ import annotations

import json
import random
import uuid
from datetime import timedelta
from functools import cache

import structlog
from redis import Redis
from sqlalchemy import Engine

from libs.crypto import SecretBox
from libs.db.base import utcnow
from libs.db.session import make_engine, system_session
from libs.queue import JobSpec, enqueue_many, redis_from_url
from services.campaign.inbound import repository as repo
from services.campaign.webhooks.outbox import delivery_job, publish
from services.campaign.webhooks.settings import WebhookSettings
from services.campaign.webhooks.signing import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    UnsafeUrl,
    check_url,
    post,
    sign,
)

log = structlog.get_logger(__name__)

_OPEN: dict[str, set[str]] = {"engines": set(), "redis": set()}


@cache
def engine_for(url: str) -> Engine:
    """This process's engine for ``url`` (the campaign service's jobs share it)."""
    _OPEN["engines"].add(url)
    return make_engine(url, pool_size=2)


@cache
def redis_for(url: str) -> Redis:
    """This process's Redis client for ``url``."""
    _OPEN["redis"].add(url)
    return redis_from_url(url)


def dispose() -> None:
    """Close the cached engines and Redis clients (process shutdown, tests)."""
    for engine_url in list(_OPEN["engines"]):
        engine_for(engine_url).dispose()
    for redis_url in list(_OPEN["redis"]):
        redis_for(redis_url).close()
    engine_for.cache_clear()
    redis_for.cache_clear()
    _OPEN["engines"].clear()
    _OPEN["redis"].clear()


def publish_message_event(event_id: str) -> int:
    """Owe a recorded message event (``sent``, ``failed``... written by the worker) to customer endpoints."""
    settings = WebhookSettings()
    jobs: list[JobSpec] = []
    with system_session(engine_for(settings.database_url)) as session:
        owed = publish(session, jobs, event_id=uuid.UUID(event_id))
    if jobs:
        enqueue_many(redis_for(settings.redis_url), jobs)
    return owed


def deliver_webhook(delivery_id: str) -> str:
    """Make one signed attempt of a webhook delivery, log it, and schedule the next on failure.

    At least once: a receiver may see the same ``Tidewater-Delivery`` twice (a crash after its
    2xx and before our commit) and should dedupe on it. A delivered or failed delivery is left alone.
    """
    settings = WebhookSettings()
    box = SecretBox.from_settings(settings)
    with system_session(engine_for(settings.database_url)) as session:
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
        secret = box.decrypt(row.secret_encrypted, associated_data=row.endpoint_id.bytes)
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
        retry = delivery_job(uuid.UUID(delivery_id), number + 1)
        enqueue_many(redis_for(settings.redis_url), [retry])
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
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
