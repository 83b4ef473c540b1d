"""Queue and worker statistics read from Redis/RQ, and the ledger's messages that need a human.

One :func:`collect` reads every queue's registries, the workers and the throughput timeline
in three pipelined round trips, whatever the number of queues; the gateway runs it once per
second for every watcher, and ``sdr status`` prints it.

Throughput and job durations come from a small timeline kept in Redis: each collection looks
at the finished and failed registries for entries newer than a shared cursor, claims each
new job id once (``SET NX``, so several gateway processes never count a job twice), and
counts it in a 10-second bucket of a per-queue hash, with its run time in a histogram hash.
The registries score entries by expiry (end + TTL); the cursor assumes one TTL per queue and
registry, which holds here (every job of a queue is enqueued the same way).
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from redis import Redis
from rq import Worker
from rq.registry import (
    CanceledJobRegistry,
    DeferredJobRegistry,
    FailedJobRegistry,
    FinishedJobRegistry,
    ScheduledJobRegistry,
    StartedJobRegistry,
)
from rq.serializers import JSONSerializer
from rq.utils import utcparse
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import Session

from libs.db.session import system_session
from libs.queue import ALL_QUEUES, get_queue

BUCKET_SECONDS = 10
"""Width of one throughput bucket."""
WINDOW_SECONDS = 15 * 60
"""How far back the timeline reaches (the longest throughput window)."""
WINDOWS_MINUTES = (1, 5, 15)
SEEN_TTL = 2 * WINDOW_SECONDS
SCAN_LIMIT = 5000
"""Registry entries looked at per queue and registry per collection (the rest next time)."""
DURATION_BUCKETS: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
"""Upper bounds (seconds) of the job-duration histogram; one more bucket catches the rest."""
OUTCOMES = ("finished", "failed")
UNKNOWN_LIMIT = 100


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else value


def timeline_key(queue: str, outcome: str) -> str:
    """The hash of 10-second buckets counting jobs of ``queue`` that ended with ``outcome``."""
    return f"tw:ops:done:{queue}:{outcome}"


def duration_key(queue: str) -> str:
    """The hash holding the job-duration histogram of ``queue``."""
    return f"tw:ops:duration:{queue}"


def _cursor_key(queue: str, outcome: str) -> str:
    return f"tw:ops:cursor:{queue}:{outcome}"


def _seen_key(outcome: str, job_id: str) -> str:
    return f"tw:ops:seen:{outcome}:{job_id}"


@dataclass
class QueueStats:
    """One queue: how many jobs wait, run, wait for a time or a dependency, failed, and how fast it drains."""

    name: str
    queued: int = 0
    started: int = 0
    scheduled: int = 0
    deferred: int = 0
    failed: int = 0
    canceled: int = 0
    finished_15m: int = 0
    failed_15m: int = 0
    oldest_waiting_seconds: float | None = None
    throughput_per_minute: dict[str, float] = field(default_factory=dict)
    """Jobs ended (finished or failed) per minute over the last 1, 5 and 15 minutes (keys "1m", "5m", "15m")."""


@dataclass
class WorkerStats:
    """One RQ worker: what it listens to, what it does, when it last said so."""

    name: str
    queues: list[str]
    state: str
    current_job: str | None
    last_heartbeat: str | None
    heartbeat_age_seconds: float | None
    successful_jobs: int
    failed_jobs: int


@dataclass
class UnknownMessage:
    """A ledger row whose send may or may not have happened: an operator decides."""

    id: str
    org_id: str
    campaign_id: str
    channel: str
    attempt: int
    error_code: str | None
    updated_at: str


@dataclass
class Snapshot:
    """Everything a watcher sees at one moment."""

    at: float
    queues: list[QueueStats]
    workers: list[WorkerStats]
    unknown_count: int = 0
    unknown: list[UnknownMessage] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """Return the snapshot as JSON-ready data."""
        return asdict(self)


def _registries(name: str, redis: Redis) -> dict[str, str]:
    return {
        "started": StartedJobRegistry(name, connection=redis).key,
        "scheduled": ScheduledJobRegistry(name, connection=redis).key,  # type: ignore[no-untyped-call]
        "deferred": DeferredJobRegistry(name, connection=redis).key,
        "failed": FailedJobRegistry(name, connection=redis).key,
        "canceled": CanceledJobRegistry(name, connection=redis).key,
        "finished": FinishedJobRegistry(name, connection=redis).key,
    }


def _parse_time(raw: bytes | str | None) -> datetime | None:
    text = _text(raw)
    if not text:
        return None
    try:
        return utcparse(text)
    except ValueError:
        return None


def _bucket(ts: float) -> int:
    return int(ts // BUCKET_SECONDS) * BUCKET_SECONDS


def _count_new(
    redis: Redis, names: Sequence[str], found: list[Any], now: float
) -> dict[tuple[str, str], dict[int, int]]:
    """Claim the registry entries seen for the first time, count them in the timeline, return what was added."""
    claims: list[tuple[str, str, str]] = []  # (queue, outcome, job id)
    cursors: dict[tuple[str, str], float] = {}
    with redis.pipeline(transaction=False) as pipe:
        for i, name in enumerate(names):
            for j, outcome in enumerate(OUTCOMES):
                entries = found[i * len(OUTCOMES) + j]
                if not entries:
                    continue
                cursors[(name, outcome)] = max(score for _, score in entries)
                for member, _ in entries:
                    job_id = _text(member).split(":", 1)[0]
                    claims.append((name, outcome, job_id))
                    pipe.set(_seen_key(outcome, job_id), "1", nx=True, ex=SEEN_TTL)
        won = pipe.execute() if claims else []
    new = [claim for claim, ok in zip(claims, won, strict=True) if ok]
    with redis.pipeline(transaction=False) as pipe:
        for (name, outcome), score in cursors.items():
            pipe.set(_cursor_key(name, outcome), repr(score), ex=SEEN_TTL)
        for _, _, job_id in new:
            pipe.hmget(f"rq:job:{job_id}", "started_at", "ended_at")
        answers = pipe.execute()
    times = answers[len(cursors) :]
    added: dict[tuple[str, str], dict[int, int]] = {}
    with redis.pipeline(transaction=False) as pipe:
        for (name, outcome, _), (started_raw, ended_raw) in zip(new, times, strict=True):
            started, ended = _parse_time(started_raw), _parse_time(ended_raw)
            bucket = _bucket(ended.timestamp() if ended else now)
            into = added.setdefault((name, outcome), {})
            into[bucket] = into.get(bucket, 0) + 1
            pipe.hincrby(timeline_key(name, outcome), str(bucket), 1)
            if started and ended and ended >= started:
                seconds = (ended - started).total_seconds()
                slot = next((k for k, bound in enumerate(DURATION_BUCKETS) if seconds <= bound), len(DURATION_BUCKETS))
                pipe.hincrby(duration_key(name), f"b{slot}", 1)
                pipe.hincrbyfloat(duration_key(name), "sum", seconds)
                pipe.hincrby(duration_key(name), "count", 1)
        if new:
            pipe.execute()
    return added


def collect_queues(redis: Redis, names: Sequence[str] = ALL_QUEUES, *, now: float | None = None) -> list[QueueStats]:
    """Read every queue's counts, oldest waiting job and throughput (three pipelined round trips)."""
    now = time.time() if now is None else now
    names = [str(n) for n in names]
    keys = [_registries(name, redis) for name in names]
    with redis.pipeline(transaction=False) as pipe:
        for name, regs in zip(names, keys, strict=True):
            pipe.llen(get_queue(name, redis).key)
            pipe.lindex(get_queue(name, redis).key, 0)
            for reg in ("started", "scheduled", "deferred", "failed", "canceled"):
                pipe.zcard(regs[reg])
            for outcome in OUTCOMES:
                pipe.hgetall(timeline_key(name, outcome))
        for name in names:
            for outcome in OUTCOMES:
                pipe.get(_cursor_key(name, outcome))
        counts = pipe.execute()
    per_queue = 2 + 5 + len(OUTCOMES)
    cursor_values = counts[per_queue * len(names) :]
    with redis.pipeline(transaction=False) as pipe:
        for i in range(len(names)):
            oldest = counts[i * per_queue + 1]
            pipe.hget(f"rq:job:{_text(oldest)}", "enqueued_at") if oldest else pipe.echo(b"")
        for i in range(len(names)):
            for j, outcome in enumerate(OUTCOMES):
                raw = cursor_values[i * len(OUTCOMES) + j]
                start = _text(raw) if raw else "-inf"
                pipe.zrangebyscore(keys[i][outcome], start, "+inf", start=0, num=SCAN_LIMIT, withscores=True)
        second = pipe.execute()
    enqueued, found = second[: len(names)], second[len(names) :]
    added = _count_new(redis, names, found, now)

    stats: list[QueueStats] = []
    stale: list[tuple[str, list[str]]] = []
    horizon = now - WINDOW_SECONDS
    for i, name in enumerate(names):
        row = counts[i * per_queue : (i + 1) * per_queue]
        q = QueueStats(name=name, queued=int(row[0]))
        q.started, q.scheduled, q.deferred, q.failed, q.canceled = (int(v) for v in row[2:7])
        when = _parse_time(enqueued[i]) if row[1] else None
        if when is not None:
            q.oldest_waiting_seconds = round(max(0.0, now - when.timestamp()), 3)
        ended = dict.fromkeys(WINDOWS_MINUTES, 0)
        for j, outcome in enumerate(OUTCOMES):
            buckets = {int(_text(k)): int(v) for k, v in row[7 + j].items()}
            for bucket, n in added.get((name, outcome), {}).items():
                buckets[bucket] = buckets.get(bucket, 0) + n
            old = [str(b) for b in buckets if b + BUCKET_SECONDS <= horizon]
            if old:
                stale.append((timeline_key(name, outcome), old))
            for minutes in WINDOWS_MINUTES:
                since = now - minutes * 60
                total = sum(v for b, v in buckets.items() if b + BUCKET_SECONDS > since)
                ended[minutes] += total
                if minutes == 15:
                    if outcome == "finished":
                        q.finished_15m = total
                    else:
                        q.failed_15m = total
        q.throughput_per_minute = {f"{m}m": round(ended[m] / m, 2) for m in WINDOWS_MINUTES}
        stats.append(q)
    if stale:
        with redis.pipeline(transaction=False) as pipe:
            for key, fields in stale:
                pipe.hdel(key, *fields)
            pipe.execute()
    return stats


def collect_workers(redis: Redis, *, now: float | None = None) -> list[WorkerStats]:
    """Read every registered RQ worker (state, queues, current job, heartbeat)."""
    now = time.time() if now is None else now
    workers: list[WorkerStats] = []
    for worker in Worker.all(connection=redis, serializer=JSONSerializer):
        heartbeat = worker.last_heartbeat
        workers.append(
            WorkerStats(
                name=worker.name,
                queues=worker.queue_names(),
                state=str(worker.get_state()),
                current_job=worker.get_current_job_id(),
                last_heartbeat=heartbeat.isoformat() if heartbeat else None,
                heartbeat_age_seconds=round(now - heartbeat.timestamp(), 3) if heartbeat else None,
                successful_jobs=worker.successful_job_count,
                failed_jobs=worker.failed_job_count,
            )
        )
    return sorted(workers, key=lambda w: w.name)


def durations(redis: Redis, names: Iterable[str] = ALL_QUEUES) -> dict[str, tuple[list[int], float, int]]:
    """Per queue: histogram bucket counts (one per bound plus +Inf, not cumulative), sum and count."""
    names = [str(n) for n in names]
    with redis.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.hgetall(duration_key(name))
        raw = pipe.execute()
    result: dict[str, tuple[list[int], float, int]] = {}
    for name, data in zip(names, raw, strict=True):
        fields = {_text(k): _text(v) for k, v in data.items()}
        counts = [int(fields.get(f"b{k}", 0)) for k in range(len(DURATION_BUCKETS) + 1)]
        result[name] = (counts, float(fields.get("sum", 0.0)), int(fields.get("count", 0)))
    return result


UNKNOWN_MESSAGES = sa.text(
    """
    SELECT id, org_id, campaign_id, channel, attempt, error_code, updated_at, count(*) OVER () AS total
    FROM messages
    WHERE status = 'unknown'
    ORDER BY updated_at, id
    LIMIT :limit
    """
)
"""The ledger rows whose outcome nobody knows, oldest first (uses the (status, ...) index)."""


def _unknown(rows: Sequence[Any]) -> tuple[int, list[UnknownMessage]]:
    total = int(rows[0].total) if rows else 0
    return total, [
        UnknownMessage(
            id=str(r.id),
            org_id=str(r.org_id),
            campaign_id=str(r.campaign_id),
            channel=r.channel,
            attempt=int(r.attempt),
            error_code=r.error_code,
            updated_at=r.updated_at.astimezone(UTC).isoformat(),
        )
        for r in rows
    ]


def unknown_messages(session: Session, *, limit: int = UNKNOWN_LIMIT) -> tuple[int, list[UnknownMessage]]:
    """Return how many messages are ``unknown`` and the oldest ``limit`` of them (a system session)."""
    return _unknown(session.connection().execute(UNKNOWN_MESSAGES, {"limit": limit}).all())


async def unknown_messages_async(
    session: AsyncSession, *, limit: int = UNKNOWN_LIMIT
) -> tuple[int, list[UnknownMessage]]:
    """Async :func:`unknown_messages` for the gateway."""
    return _unknown((await (await session.connection()).execute(UNKNOWN_MESSAGES, {"limit": limit})).all())


def collect(redis: Redis, names: Sequence[str] = ALL_QUEUES, *, now: float | None = None) -> Snapshot:
    """Read queues and workers from Redis (the ledger part is added by the caller's session)."""
    now = time.time() if now is None else now
    return Snapshot(at=now, queues=collect_queues(redis, names, now=now), workers=collect_workers(redis, now=now))


def age(seconds: float | None) -> str:
    """Render a duration compactly for the terminal (``3s``, ``4m``, ``2h``)."""
    if seconds is None or math.isnan(seconds):
        return "-"
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def render(snapshot: Snapshot) -> str:
    """Render a snapshot as the plain-text table ``sdr status`` prints."""
    lines = [f"Tidewater queues at {datetime.fromtimestamp(snapshot.at, UTC):%Y-%m-%d %H:%M:%S} UTC", ""]
    header = ("queue", "queued", "started", "sched", "defer", "failed", "done15m", "oldest", "/min 1m", "5m", "15m")
    rows = [header]
    for q in snapshot.queues:
        t = q.throughput_per_minute
        rows.append(
            (
                q.name,
                str(q.queued),
                str(q.started),
                str(q.scheduled),
                str(q.deferred),
                str(q.failed),
                str(q.finished_15m),
                age(q.oldest_waiting_seconds),
                str(t.get("1m", 0)),
                str(t.get("5m", 0)),
                str(t.get("15m", 0)),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines.extend("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows)
    lines.append("")
    if snapshot.workers:
        lines.append(f"workers ({len(snapshot.workers)}):")
        for w in snapshot.workers:
            job = f" job={w.current_job}" if w.current_job else ""
            lines.append(
                f"  {w.name}  {w.state}  queues={','.join(w.queues)}  heartbeat={age(w.heartbeat_age_seconds)} ago{job}"
            )
    else:
        lines.append("workers: none")
    lines.append("")
    lines.append(f"unknown messages needing a decision: {snapshot.unknown_count}")
    for m in snapshot.unknown[:10]:
        lines.append(f"  {m.id}  {m.channel}  campaign={m.campaign_id}  since {m.updated_at}")
    return "\n".join(lines)


def status_text(redis: Redis, engine: Engine | None) -> str:
    """Collect a snapshot (the ledger part when ``engine`` is given) and render it for the terminal."""
    snapshot = collect(redis)
    note = ""
    if engine is not None:
        try:
            with system_session(engine) as session:
                snapshot.unknown_count, snapshot.unknown = unknown_messages(session)
        except SQLAlchemyError as exc:
            note = f"\n(the ledger could not be read: {type(exc).__name__})"
    return render(snapshot) + note


def parse_uuid(value: str) -> uuid.UUID | None:
    """Return ``value`` as a UUID, or None when it is not one."""
    try:
        return uuid.UUID(value)
    except ValueError:
        return None
