"""Queues: names, the Redis connection, the job entry type, and jobs enqueued only after the commit."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import structlog
from redis import Redis
from redis.exceptions import ResponseError
from rq import Queue
from rq.serializers import JSONSerializer


class QueueName(StrEnum):
    """The RQ queues: one per outbound channel, one for inbound events, the default one for imports.

    The AI writes each message inside the send job of its channel (the personalization is a
    stage of that job, not a queue of its own), so a slow model never holds another channel.
    """

    EMAIL = "email"
    SMS = "sms"
    VOICEMAIL = "voicemail"
    INBOUND = "inbound"
    DEFAULT = "default"


ALL_QUEUES: tuple[QueueName, ...] = tuple(QueueName)
log = structlog.get_logger(__name__)


def redis_from_url(url: str) -> Redis:
    """Open a Redis client; RQ needs raw bytes, so responses are not decoded."""
    return Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5, health_check_interval=30)


class RedisEvicts(RuntimeError):
    """Redis may evict keys under memory pressure: queued jobs would vanish without a trace."""


def require_noeviction(connection: Redis) -> None:
    """Refuse to run against a Redis whose ``maxmemory-policy`` is not ``noeviction``.

    With any other policy a full Redis silently drops keys, queued jobs among them. (The
    ledger would still repair lost jobs, but an operator must know the queue is not a safe
    place.) A Redis that hides ``CONFIG`` (some managed services) cannot be checked; that is
    logged, not refused.

    Raises:
        RedisEvicts: the policy is something else.
    """
    try:
        found = connection.config_get("maxmemory-policy")
    except ResponseError as exc:
        log.warning("redis_policy_unknown", error=str(exc))
        return
    raw = next(iter(found.values()), b"") if found else b""
    policy = raw.decode() if isinstance(raw, bytes) else str(raw)
    if policy != "noeviction":
        raise RedisEvicts(
            f"Redis maxmemory-policy is {policy!r}: set it to 'noeviction' (CONFIG SET maxmemory-policy noeviction"
            " and in redis.conf) so queued jobs are never evicted."
        )


def get_queue(name: QueueName | str, connection: Redis) -> Queue:
    """Return the named queue, with the JSON serializer (jobs take ids, never objects)."""
    return Queue(str(name), connection=connection, serializer=JSONSerializer)


DEFAULT_TIMEOUT = 60
"""Seconds RQ lets a job run before it raises in it, unless the entry says otherwise."""
DEFAULT_RESULT_TTL = 60
"""Seconds RQ keeps a finished job's result, unless the entry says otherwise."""


@dataclass(frozen=True, slots=True)
class Job:
    """A registered job: its name, the dotted path RQ imports, its queue, timeout and result TTL.

    ``libs.jobs`` holds every one; the type lives here so :class:`JobSpec` can name it.
    """

    name: str
    target: str
    queue: QueueName
    timeout: int = DEFAULT_TIMEOUT
    result_ttl: int = DEFAULT_RESULT_TTL

    @property
    def module(self) -> str:
        """The module that defines the job function."""
        return self.target.rpartition(".")[0]

    @property
    def function(self) -> str:
        """The job function's name in its module."""
        return self.target.rpartition(".")[2]

    def spec(
        self,
        *args: Any,
        job_id: str | None = None,
        timeout: int | None = None,
        result_ttl: int | None = None,
        **kwargs: Any,
    ) -> JobSpec:
        """A job to enqueue with JSON-safe ``args``; the entry's queue, its timeout unless ``timeout`` is given."""
        return JobSpec(
            queue=self.queue,
            func=self,
            args=args,
            job_id=job_id,
            timeout=self.timeout if timeout is None else timeout,
            result_ttl=self.result_ttl if result_ttl is None else result_ttl,
            kwargs=kwargs,
        )


@dataclass(frozen=True, slots=True)
class JobSpec:
    """A job to enqueue: its registry entry (``libs.jobs``) and JSON-safe arguments.

    ``Job.spec`` builds one with the entry's queue and timeout. ``func`` also takes a dotted
    path, for tests and benchmarks that enqueue functions of their own.
    """

    queue: QueueName
    func: Job | str
    args: tuple[Any, ...] = ()
    job_id: str | None = None
    timeout: int = 60
    result_ttl: int = 60
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def target(self) -> str:
        """The dotted path of the job function, as RQ stores it."""
        return self.func if isinstance(self.func, str) else self.func.target


@dataclass
class PendingJobs:
    """Jobs requested during a unit of work, pushed to Redis only after its commit."""

    jobs: list[JobSpec] = field(default_factory=list)

    def add(self, job: JobSpec) -> None:
        """Remember ``job`` until the commit."""
        self.jobs.append(job)

    def discard(self) -> None:
        """Forget every job (the transaction rolled back)."""
        self.jobs.clear()

    def flush(self, connection: Redis) -> int:
        """Enqueue every remembered job in one pipeline per queue; return how many."""
        count = enqueue_many(connection, self.jobs)
        self.jobs.clear()
        return count


def enqueue_many(connection: Redis, jobs: Sequence[JobSpec] | Iterable[JobSpec]) -> int:
    """Enqueue ``jobs`` grouped by queue, each group in one Redis pipeline."""
    by_queue: dict[QueueName, list[JobSpec]] = {}
    for job in jobs:
        by_queue.setdefault(job.queue, []).append(job)
    count = 0
    for name, specs in by_queue.items():
        queue = get_queue(name, connection)
        datas = [
            Queue.prepare_data(
                spec.target,
                args=spec.args,
                kwargs=spec.kwargs,
                job_id=spec.job_id,
                timeout=spec.timeout,
                result_ttl=spec.result_ttl,
            )
            for spec in specs
        ]
        with connection.pipeline() as pipe:
            queue.enqueue_many(datas, pipeline=pipe)
            pipe.execute()
        count += len(specs)
    return count
