"""The ticker: turns due enrollments into ledger rows and RQ jobs, and repairs what Redis lost.

It also ends reviews whose deadline passed (review mode): each such message is skipped or
approved as it is, as its campaign says, and an approved one is dispatched in the same pass.

Safe to run several at once: enrollments and due rows are claimed with ``FOR UPDATE SKIP
LOCKED`` and a state change in the same transaction, and the jobs are enqueued only after
that commit (a crash in between leaves ``queued`` rows that the repair pass re-enqueues).
Customer webhook retries are driven the same way: a failed delivery's ``next_attempt_at`` in
PostgreSQL is the schedule, and the ticker enqueues the attempt when it is due (RQ's own
scheduler can enqueue a job twice and exits on a Redis error).
The repair pass is what makes Redis disposable: a ``queued`` row whose job is missing
(flushed, evicted, never written), failed or stuck in a dead worker is enqueued again; the
claim in the job makes any duplicate harmless. A Redis that lost its data (its sentinel key
is gone) is repaired on the next pass, without waiting ``SDR_REPAIR_AFTER_SECONDS``.

Dead workers are noticed within seconds. Every pass looks at the jobs RQ lists as started
and at the liveness key of the worker running each one (``tw:alive:<name>``, refreshed every
third of ``SDR_WORKER_ALIVE_TTL``): a worker whose key has been gone for half a TTL more (a
Redis flush deletes the key of a live worker too, which writes it again within a third of a
TTL) is dead, and the messages of its job that are still ``queued`` are enqueued again at
once, its job moved to the failed registry. The one message it may have had in flight is
``sending`` under a lease its process renewed while alive: the lease runs out at most one TTL
after the kill, and the next pass records it ``unknown`` (never resent; the enrollment waits
for an operator). So with the defaults (15 s TTL, 1 s passes) a killed worker's queued
messages are enqueued again within about 24 s and its in-flight message is ``unknown``
within about 16 s.
"""

from __future__ import annotations

import signal
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import FrameType

import structlog
from redis import Redis
from rq import Worker
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry, StartedJobRegistry
from rq.serializers import JSONSerializer
from sqlalchemy import Engine

from libs import jobs as registry
from libs import ledger as resolution
from libs.db.base import utcnow
from libs.db.models.campaign import ReviewAfterDeadline
from libs.db.session import system_session
from libs.ledger import review
from libs.ledger.enrollments import job_of_key
from libs.ledger.messages import EXPIRED_REVIEWS
from libs.ledger.review import Approval
from libs.queue import JobSpec, enqueue_many
from services.worker import ledger
from services.worker.jobs import QUEUE_OF, Announcements, announce, job_for
from services.worker.settings import WorkerSettings

log = structlog.get_logger(__name__)

MARKER_TTL = 7 * 86400
JOB_BATCH = 50
"""Messages per send job: enough to amortize the per-job costs (RQ's dequeue and bookkeeping, the
batch's load, suppression check, rate-limit pipeline and freeze), few enough to spread over workers.
Measured in bench/worker.py (2 workers, 6,000 steps, alternating runs): 230 and 249 messages/s at
50 against 214 and 213 at 20."""
WAITING = {b"queued", b"deferred", b"scheduled"}
SENTINEL = "tw:ticker:sentinel"
"""A key the ticker keeps in Redis: its absence means Redis lost its data (flushed, restarted empty)."""
REPAIR_BATCH = 5000
WEBHOOK_LEASE = timedelta(minutes=5)
"""A dispatched attempt is not dispatched again for this long (the job re-schedules or finishes it)."""
WEBHOOK_INTERVAL = 5.0
"""Seconds between two looks for due webhook attempts."""


def alive_key(worker_name: str) -> str:
    """The Redis key a live worker process keeps refreshing."""
    return f"tw:alive:{worker_name}"


def marker_key(message_id: uuid.UUID | str) -> str:
    """The Redis key naming the job that carries a message."""
    return job_of_key(message_id)


@dataclass
class TickStats:
    """What one pass did."""

    claimed: int = 0
    dispatched: int = 0
    repaired: int = 0
    rescued: int = 0
    lost: int = 0
    released: int = 0
    webhooks: int = 0
    expired: int = 0
    jobs: int = 0


class Ticker:
    """One ticker process: claim due work, enqueue it, repair what is missing."""

    def __init__(self, settings: WorkerSettings, engine: Engine, redis: Redis) -> None:
        self.settings = settings
        self.engine = engine
        self.redis = redis
        self._stop = threading.Event()
        self._webhooks_at = 0.0
        self._full_repair = False
        self._missing_since: dict[str, float] = {}
        """Workers with a started job whose liveness key was missing, and since when (monotonic)."""

    def now(self) -> datetime:
        """The ticker's clock (shifted by ``clock_offset_seconds`` in tests)."""
        return utcnow() + timedelta(seconds=self.settings.clock_offset_seconds)

    def stop(self) -> None:
        """Ask the loop to end after the current pass."""
        self._stop.set()

    def run(self) -> None:
        """Tick until stopped."""
        log.info("ticker_started", interval=self.settings.ticker_interval)
        while not self._stop.is_set():
            try:
                stats = self.tick()
            except Exception as exc:  # the loop must outlive a database or Redis blip
                log.exception("ticker_pass_failed", error=type(exc).__name__)
                stats = TickStats()
            if stats.claimed == 0 and stats.dispatched == 0:
                self._stop.wait(self.settings.ticker_interval)
        log.info("ticker_stopped")

    def tick(self) -> TickStats:
        """One pass: claim due enrollments, dispatch due retries and holds, repair lost jobs."""
        stats = TickStats()
        while True:
            claimed = self._claim_batch()
            stats.claimed += len(claimed)
            stats.jobs += self._enqueue(claimed, tag="0")
            if len(claimed) < self.settings.ticker_batch:
                break
        stats.expired = self.expire_reviews()
        now = self.now()
        with system_session(self.engine) as session:
            due = [(r.id, r.channel) for r in session.execute(ledger.DISPATCH_DUE, {"now": now, "batch": 10_000})]
        stats.dispatched = len(due)
        stats.jobs += self._enqueue(due, tag=f"d{int(now.timestamp())}")
        stats.rescued = self.rescue_dead_workers()
        stats.lost = self.expire_claims()
        stats.repaired = self.repair()
        if time.monotonic() >= self._webhooks_at:
            stats.webhooks = self.dispatch_webhooks()
            stats.released = self.release_unknown_holds()
            self._webhooks_at = time.monotonic() + WEBHOOK_INTERVAL
        counts = (stats.claimed, stats.dispatched, stats.repaired, stats.rescued, stats.lost, stats.released)
        if any(counts) or stats.webhooks or stats.expired:
            log.info("ticker_pass", **stats.__dict__)
        return stats

    def expire_reviews(self) -> int:
        """Messages past their review deadline: skipped, or approved as they are (their campaign says which).

        The approved ones are due at once, so this pass's dispatch hands them to the worker.
        """
        now = self.now()
        with system_session(self.engine) as session:
            rows = session.execute(EXPIRED_REVIEWS, {"now": now, "batch": self.settings.ticker_batch}).all()
            skip = [r.id for r in rows if r.review_after_deadline != ReviewAfterDeadline.SEND]
            send = [
                Approval(r.id, r.subject, r.body or "")
                for r in rows
                if r.review_after_deadline == ReviewAfterDeadline.SEND
            ]
            skipped = review.reject_sync(session, skip, reason=review.EXPIRED, note=None, by=None, now=now)
            sent = review.approve_sync(session, send, by=None, note=review.DEADLINE_APPROVED, now=now)
        if rows:
            log.info("ticker_reviews_expired", skipped=[str(i) for i in skipped], approved=[str(i) for i, _ in sent])
        return len(skipped) + len(sent)

    def _claim_batch(self) -> list[tuple[uuid.UUID, str]]:
        with system_session(self.engine) as session:
            rows = session.execute(
                ledger.CLAIM_DUE_ENROLLMENTS, {"now": self.now(), "batch": self.settings.ticker_batch}
            ).all()
        return [(r.id, r.channel) for r in rows]

    def _enqueue(self, messages: Iterable[tuple[uuid.UUID, str]], *, tag: str) -> int:
        by_channel: dict[str, list[uuid.UUID]] = {}
        for message_id, channel in messages:
            by_channel.setdefault(channel, []).append(message_id)
        specs: list[JobSpec] = []
        markers: dict[str, str] = {}
        for channel, ids in by_channel.items():
            for start in range(0, len(ids), JOB_BATCH):
                chunk = ids[start : start + JOB_BATCH]
                spec = job_for(chunk, channel, self.settings, tag)
                specs.append(spec)
                for message_id in chunk:
                    markers[marker_key(message_id)] = str(spec.job_id)
        if not specs:
            return 0
        with self.redis.pipeline(transaction=False) as pipe:
            for key, job_id in markers.items():
                pipe.set(key, job_id, ex=MARKER_TTL)
            pipe.execute()
        return enqueue_many(self.redis, specs)

    def dispatch_webhooks(self) -> int:
        """Enqueue every customer webhook attempt that is due; return how many."""
        now = self.now()
        params = {
            "now": now,
            "lease": now + WEBHOOK_LEASE,
            "cutoff": now - timedelta(seconds=max(self.settings.repair_after_seconds, 60)),
            "batch": 1000,
        }
        with system_session(self.engine) as session:
            due = session.execute(ledger.DUE_WEBHOOKS, params).all()
        specs = [
            registry.DELIVER_WEBHOOK.spec(str(row.id), job_id=f"webhook-{row.id}-{row.attempts + 1}") for row in due
        ]
        return enqueue_many(self.redis, specs) if specs else 0

    def expire_claims(self) -> int:
        """Record ``unknown`` every claim whose lease ran out (its worker died mid-send); return how many.

        Done here rather than by a job, so a dead worker's message in flight is ``unknown`` within
        a pass of its lease running out, however long the queues are.
        """
        now = self.now()
        with system_session(self.engine) as session:
            rows = session.execute(ledger.LOST_CLAIMS, {"now": now, "batch": 5000}).all()
        if rows:
            done = Announcements()
            for row in rows:
                done.event("unknown", row, "claim_lost")
            announce(self.redis, done)
            log.warning("ticker_claims_lost", count=len(rows), message_ids=[str(r.id) for r in rows[:20]])
        return len(rows)

    def release_unknown_holds(self) -> int:
        """With ``SDR_UNKNOWN_HOLD_HOURS``: move on the enrollments held that long on an unknown step.

        The message stays ``unknown`` (an operator may still resolve it; it is never resent), the
        enrollment is scheduled as after a send (:func:`libs.ledger.next_step`). Unset: nothing.
        """
        hours = self.settings.unknown_hold_hours
        if hours is None:
            return 0
        now = self.now()
        with system_session(self.engine) as session:
            conn = session.connection()
            ids = [
                r.id
                for r in conn.execute(ledger.HELD_ON_UNKNOWN, {"cutoff": now - timedelta(hours=hours), "batch": 500})
            ]
            if not ids:
                return 0
            facts = conn.execute(resolution.LOAD, {"ids": ids}).all()
            plans = [(row, *resolution.next_step(row, now)) for row in facts]
            released = conn.execute(
                ledger.RELEASE_HELD,
                {
                    "ids": [row.enrollment_id for row, _, _ in plans],
                    "positions": [row.position for row, _, _ in plans],
                    "actions": [action for _, action, _ in plans],
                    "due": [due for _, _, due in plans],
                    "now": now,
                },
            ).all()
        if released:
            log.warning("ticker_unknown_holds_released", count=len(released), hours=hours)
        return len(released)

    def dead_workers(self, workers: Iterable[str]) -> set[str]:
        """Of ``workers``, those whose liveness key has been missing for at least half a TTL."""
        names = sorted(set(workers))
        if not names:
            return set()
        with self.redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.exists(alive_key(name))
            alive = pipe.execute()
        clock = time.monotonic()
        grace = self.settings.worker_alive_ttl / 2
        dead: set[str] = set()
        for name, present in zip(names, alive, strict=True):
            if int(present):
                self._missing_since.pop(name, None)
                continue
            since = self._missing_since.setdefault(name, clock)
            if clock - since >= grace:
                dead.add(name)
        for name in set(self._missing_since) - set(names):
            del self._missing_since[name]
        return dead

    def rescue_dead_workers(self) -> int:
        """Enqueue again, at once, the waiting messages of every started job whose worker is dead; return how many."""
        started: list[tuple[str, str, str]] = []  # (queue, job id, registry entry)
        for queue in sorted({str(q) for q in QUEUE_OF.values()}):
            registry = StartedJobRegistry(queue, connection=self.redis)
            started.extend(
                (queue, job_id, f"{job_id}:{execution_id}")
                for job_id, execution_id in registry.get_job_and_execution_ids(cleanup=False)
            )
        if not started:
            self._missing_since.clear()
            return 0
        with self.redis.pipeline(transaction=False) as pipe:
            for _, job_id, _ in started:
                pipe.hmget(f"rq:job:{job_id}", "status", "worker_name")
            owners = pipe.execute()
        running = {
            job_id: worker.decode()
            for (_, job_id, _), (status, worker) in zip(started, owners, strict=True)
            if status == JobStatus.STARTED.value.encode() and worker
        }
        dead = self.dead_workers(running.values())
        if not dead:
            return 0
        orphans = [entry for entry in started if running.get(entry[1]) in dead]
        jobs = Job.fetch_many([job_id for _, job_id, _ in orphans], connection=self.redis, serializer=JSONSerializer)
        message_ids: list[str] = []
        with self.redis.pipeline() as pipe:
            for (queue, _, entry), job in zip(orphans, jobs, strict=True):
                pipe.zrem(StartedJobRegistry(queue, connection=self.redis).key, entry)
                if job is None:
                    continue
                if job.args and isinstance(job.args[0], list):
                    message_ids.extend(str(m) for m in job.args[0])
                job.set_status(JobStatus.FAILED, pipeline=pipe)
                FailedJobRegistry(queue, connection=self.redis).add(
                    job, exc_string=f"worker {job.worker_name} died (liveness key gone)", pipeline=pipe
                )
            pipe.execute()
        for name in dead:  # operators stop seeing it as busy: RQ would keep it listed for its TTL
            worker = Worker.find_by_key(Worker.redis_worker_namespace_prefix + name, connection=self.redis)
            if worker is not None:
                worker.register_death()  # type: ignore[no-untyped-call]
        if not message_ids:
            return 0
        with system_session(self.engine) as session:
            waiting = [(r.id, r.channel) for r in session.execute(ledger.QUEUED_OF, {"ids": message_ids})]
        if waiting:
            self._enqueue(waiting, tag=f"w{int(self.now().timestamp())}")
        log.warning(
            "ticker_rescued_dead_worker", workers=sorted(dead), jobs=[j for _, j, _ in orphans], count=len(waiting)
        )
        return len(waiting)

    def repair(self) -> int:
        """Re-enqueue ledger rows whose job is gone, failed or stuck; return how many.

        Rows are looked at once they are ``SDR_REPAIR_AFTER_SECONDS`` old, except right after
        Redis lost its data (the sentinel key is gone: a flush, a restart without persistence):
        then every waiting row is looked at at once, until a pass finds fewer than a batch.
        """
        now = self.now()
        if self.redis.set(SENTINEL, b"1", nx=True):
            self._full_repair = True
        cutoff = now if self._full_repair else now - timedelta(seconds=self.settings.repair_after_seconds)
        stuck_after = timedelta(seconds=self.settings.job_timeout * JOB_BATCH + 60)
        with system_session(self.engine) as session:
            rows = session.execute(ledger.STALE, {"cutoff": cutoff, "now": now, "batch": REPAIR_BATCH}).all()
        self._full_repair = self._full_repair and len(rows) >= REPAIR_BATCH
        if not rows:
            return 0
        with self.redis.pipeline(transaction=False) as pipe:
            for row in rows:
                pipe.get(marker_key(row.id))
            job_ids = pipe.execute()
        with self.redis.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.hmget(f"rq:job:{job_id.decode()}", "status", "worker_name") if job_id else pipe.echo(b"")
            jobs = pipe.execute()
        with self.redis.pipeline(transaction=False) as pipe:
            for job in jobs:
                worker = job[1] if isinstance(job, list) else None
                pipe.exists(alive_key(worker.decode())) if worker else pipe.echo(b"0")
            alive = pipe.execute()
        lost: list[tuple[uuid.UUID, str]] = []
        waiting: list[uuid.UUID] = []
        for row, job, worker_alive in zip(rows, jobs, alive, strict=True):
            status = job[0] if isinstance(job, list) else None
            if status in WAITING:
                waiting.append(row.id)
            elif row.status == "sending":
                lost.append((row.id, row.channel))  # claim expired: the job decides it is unknown
            elif status == b"started" and int(worker_alive) and now - row.updated_at < stuck_after:
                continue  # a live worker has it right now
            else:
                lost.append((row.id, row.channel))
        if waiting:
            with system_session(self.engine) as session:
                session.execute(ledger.TOUCH, {"ids": waiting, "now": now})
        if lost:
            self._enqueue(lost, tag=f"r{int(now.timestamp())}")
            log.warning("ticker_repaired", count=len(lost))
        return len(lost)


def run_ticker_loop(settings: WorkerSettings, engine: Engine, redis: Redis) -> None:
    """Run a ticker until SIGTERM or SIGINT."""
    ticker = Ticker(settings, engine, redis)

    def _stop(_signum: int, _frame: FrameType | None) -> None:
        ticker.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    ticker.run()
