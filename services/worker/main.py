"""Process entry points of the worker box: RQ workers on the channel queues, and the ticker.

Workers are RQ ``SimpleWorker``s (no fork per job): measured here a fork costs about 12 ms
per job (64 no-op jobs/s against 249/s), and a forked work horse cannot keep the SMTP
connection, database pool and provider clients warm between jobs. A job that hangs is
still bounded: RQ's in-process timeout raises in the job, every provider call has a
shorter timeout of its own, and a worker killed outright is detected through its liveness
key by the ticker, which re-enqueues what it held (the ledger's claim prevents a resend),
while its in-flight claim, no longer renewed, runs out and becomes ``unknown``. A worker
whose RQ registration a Redis flush took writes it again on its next beat.
"""

from __future__ import annotations

import sys

# structlog imports rich (and with it pygments) when installed, only to pretty-print tracebacks
# in its console renderer: about 12 MB in every worker process, which logs plain or JSON lines.
# Marking it absent before structlog is first imported makes structlog fall back to plain
# tracebacks; nothing a worker runs needs rich.
if "structlog" not in sys.modules:
    sys.modules.setdefault("rich", None)  # type: ignore[arg-type]

import threading
from collections.abc import Sequence

import structlog
from pydantic import ValidationError
from redis import Redis
from rq import SimpleWorker, worker_registration
from rq.serializers import JSONSerializer
from rq.utils import now as rq_now
from rq.worker import BaseWorker

from libs import runtime
from libs.db.session import make_engine
from libs.logging import configure_logging
from libs.queue import ALL_QUEUES, get_queue, redis_from_url, require_noeviction
from services.worker import jobs
from services.worker.settings import WorkerSettings
from services.worker.ticker import alive_key, run_ticker_loop

log = structlog.get_logger(__name__)


def load_settings() -> WorkerSettings:
    """The settings from the environment; a refused setting ends the process with one line naming it."""
    try:
        return WorkerSettings()
    except ValidationError as exc:
        reasons = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
        raise SystemExit(f"sdr: {reasons}") from None


def reregister(redis: Redis, worker: BaseWorker) -> bool:
    """Write the worker's RQ registration again if it vanished (a Redis flush); return whether it did.

    Only a worker that has registered itself (``register_birth`` ran) and has not registered its
    death is written back: the same fields ``register_birth`` writes, with its current state,
    in the worker sets RQ lists workers from (``Worker.all``, hence ``/api/ops/queues`` and
    ``sdr status``). The set is what is checked: after a flush RQ's own bookkeeping at the end
    of a job writes some fields of the worker's hash back, but never the sets. A death leaves
    the key behind (with ``death``), so a stopping worker is never brought back.
    """
    if worker.birth_date is None:
        return False
    with redis.pipeline(transaction=False) as pipe:
        pipe.sismember(worker.redis_workers_keys, worker.key)
        pipe.hexists(worker.key, "death")
        listed, dead = pipe.execute()
    if listed or dead:
        return False
    worker.last_heartbeat = rq_now()
    with redis.pipeline() as pipe:
        pipe.hset(worker.key, mapping={**worker.serialize(), "state": str(worker.get_state())})
        worker_registration.register(worker, pipe)
        pipe.expire(worker.key, worker.worker_ttl + 60)
        pipe.execute()
    log.warning("worker_reregistered", name=worker.name)
    return True


def _keep_alive(settings: WorkerSettings, worker: BaseWorker, stop: threading.Event) -> None:
    """Refresh the worker's liveness key until ``stop`` (a killed process lets it expire).

    Each beat also checks the worker's RQ registration and writes it again when a Redis flush
    took it, so operators keep seeing a worker that is alive and sending.
    """
    redis = redis_from_url(settings.redis_url)
    ttl = settings.worker_alive_ttl
    name = worker.name
    while not stop.is_set():
        try:
            redis.set(alive_key(name), b"1", px=int(ttl * 1000))
            reregister(redis, worker)
        except Exception as exc:  # Redis blips must not kill the heartbeat thread
            log.warning("worker_heartbeat_failed", error=type(exc).__name__)
        stop.wait(ttl / 3)
    redis.delete(alive_key(name))


def run_worker(
    queues: Sequence[str] = ALL_QUEUES, *, settings: WorkerSettings | None = None, burst: bool = False
) -> None:
    """Run one non-forking RQ worker over ``queues`` until stopped (or until empty with ``burst``)."""
    settings = settings or load_settings()
    configure_logging(service="worker", level=settings.log_level, json=settings.json_logs)
    process = runtime.current()
    process.install_settings(settings)
    connection = process.redis(settings.redis_url)
    require_noeviction(connection)
    jobs.install(jobs.Context.create(settings, process))
    worker = SimpleWorker([get_queue(q, connection) for q in queues], connection=connection, serializer=JSONSerializer)
    stop = threading.Event()
    heartbeat = threading.Thread(target=_keep_alive, args=(settings, worker, stop), daemon=True)
    heartbeat.start()
    log.info("worker_started", queues=list(queues), name=worker.name)
    try:
        worker.work(burst=burst, with_scheduler=False, logging_level=settings.log_level)
    finally:
        stop.set()
        heartbeat.join(5)
        runtime.close()  # the send context, then every engine and Redis client of the process


def run_ticker(settings: WorkerSettings | None = None) -> None:
    """Run the ticker until SIGTERM or SIGINT (several may run at once)."""
    settings = settings or load_settings()
    configure_logging(service="ticker", level=settings.log_level, json=settings.json_logs)
    engine = make_engine(settings.database_url, pool_size=2)
    redis = redis_from_url(settings.redis_url)
    require_noeviction(redis)
    try:
        run_ticker_loop(settings, engine, redis)
    finally:
        engine.dispose()
        redis.close()
