"""Operator actions on the fleet: requeue failed jobs, pause and resume a campaign's in-flight work.

PostgreSQL stays the truth: pausing marks the campaign and its active enrollments paused in
one transaction (:mod:`libs.ledger.enrollments`' statements, the enrollments' the very ones the
campaign service's own pause runs) and then cancels the RQ jobs that
carry only that campaign's queued messages. A cancelled job's messages stay ``queued`` in the
ledger; the ticker's repair pass enqueues them again and the worker's gate holds them while
the campaign is paused. Jobs that also carry other campaigns' messages are left alone (the
gate holds this campaign's part of them).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
import structlog
from redis import Redis
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry
from rq.serializers import JSONSerializer
from sqlmodel.ext.asyncio.session import AsyncSession

from libs.errors import Conflict, NotFound
from libs.ledger import enrollments as ledger
from libs.queue import ALL_QUEUES

log = structlog.get_logger("gateway.ops")

_CANCELLABLE = {JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED}


@dataclass
class Requeued:
    """What a requeue did."""

    requeued: list[str]
    missing: list[str]


def requeue_failed(redis: Redis, job_ids: list[str] | None, queues: list[str] | None = None) -> Requeued:
    """Requeue failed jobs: the ones named, or every failed job of ``queues`` (default: all queues)."""
    names = queues or [str(q) for q in ALL_QUEUES]
    done: list[str] = []
    missing: list[str] = []
    wanted = set(job_ids) if job_ids is not None else None
    for name in names:
        registry = FailedJobRegistry(name, connection=redis, serializer=JSONSerializer)
        for job_id in registry.get_job_ids(cleanup=False):
            if wanted is not None and job_id not in wanted:
                continue
            try:
                registry.requeue(job_id)
                done.append(job_id)
            except (NoSuchJobError, InvalidJobOperation):
                missing.append(job_id)
    if wanted is not None:
        missing.extend(sorted(wanted - set(done) - set(missing)))
    return Requeued(requeued=done, missing=missing)


_STATUS = sa.text("SELECT status FROM campaigns WHERE id = :id")
_QUEUED = sa.text("SELECT id FROM messages WHERE campaign_id = :id AND org_id = :org AND status = 'queued'")


async def set_paused(session: AsyncSession, campaign_id: uuid.UUID, *, paused: bool) -> tuple[uuid.UUID, list[str]]:
    """Pause or resume the campaign in the ledger; return its org and its queued message ids."""
    conn = await session.connection()
    statement = ledger.PAUSE_CAMPAIGN if paused else ledger.RESUME_CAMPAIGN
    moved = (await conn.execute(statement, {"id": campaign_id})).first()
    if moved is None:
        current = (await conn.execute(_STATUS, {"id": campaign_id})).scalar()
        if current is None:
            raise NotFound("No such campaign.")
        wanted, verb = ("active", "paused") if paused else ("paused", "resumed")
        raise Conflict(f"The campaign is {current}; only an {wanted} campaign can be {verb}.")
    org_id: uuid.UUID = moved[0]
    move = ledger.pause_enrollments if paused else ledger.resume_enrollments
    await conn.execute(move(org_id=org_id, campaign_id=campaign_id))
    queued = [str(r[0]) for r in (await conn.execute(_QUEUED, {"id": campaign_id, "org": org_id})).all()]
    return org_id, queued


def cancel_jobs(redis: Redis, message_ids: list[str]) -> dict[str, Any]:
    """Cancel the waiting RQ jobs that carry only these messages; return what was done."""
    if not message_ids:
        return {"cancelled": 0, "kept": 0}
    with redis.pipeline(transaction=False) as pipe:
        for message_id in message_ids:
            pipe.get(ledger.job_of_key(message_id))
        job_ids = {raw.decode() for raw in pipe.execute() if raw}
    ours = set(message_ids)
    cancelled = kept = 0
    for job_id in sorted(job_ids):
        try:
            job = Job.fetch(job_id, connection=redis, serializer=JSONSerializer)
        except NoSuchJobError:
            continue
        if job.get_status(refresh=False) not in _CANCELLABLE:
            continue
        carried = job.args[0] if job.args and isinstance(job.args[0], list) else []
        if carried and set(map(str, carried)) <= ours:
            try:
                job.cancel()
                cancelled += 1
            except InvalidJobOperation:
                kept += 1
        else:
            kept += 1
    return {"cancelled": cancelled, "kept": kept}
