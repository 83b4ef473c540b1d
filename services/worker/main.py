"""Process entry points of the worker box: RQ workers on the channel queues, and the ticker.

Workers are RQ ``SimpleWorker``s (no fork per job): measured here a fork costs about 12 ms
per job (64 no-op jobs/s against 249/s), and a forked work horse cannot keep the SMTP
connection, database pool and provider clients warm between jobs. A job that hangs is
still bounded: RQ's in-process timeout raises in the job, every provider call has a
shorter timeout of its own, and a worker killed outright is detected through its liveness
key by the ticker, which re-enqueues what it held (the ledger's claim prevents a resend).
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
from rq import SimpleWorker
from rq.serializers import JSONSerializer

from libs.db.session import make_engine
from libs.logging import configure_logging
from libs.queue import ALL_QUEUES, get_queue, redis_from_url, require_noeviction
from services.worker import jobs
from services.worker.settings import WorkerSettings
from services.worker.ticker import alive_key, run_ticker_loop

log = structlog.get_logger(__name__)


def _keep_alive(settings: WorkerSettings, name: str, stop: threading.Event) -> None:
    """Refresh the worker's liveness key until ``stop`` (a killed process lets it expire)."""
    redis = redis_from_url(settings.redis_url)
    ttl = settings.worker_alive_ttl
    while not stop.is_set():
        try:
            redis.set(alive_key(name), b"1", px=int(ttl * 1000))
        except Exception as exc:  # Redis blips must not kill the heartbeat thread
            log.warning("worker_heartbeat_failed", error=type(exc).__name__)
        stop.wait(ttl / 3)
    redis.delete(alive_key(name))


def run_worker(
    queues: Sequence[str] = ALL_QUEUES, *, settings: WorkerSettings | None = None, burst: bool = False
) -> None:
    """Run one non-forking RQ worker over ``queues`` until stopped (or until empty with ``burst``)."""
    settings = settings or WorkerSettings()
    configure_logging(service="worker", level=settings.log_level, json=settings.json_logs)
    connection = redis_from_url(settings.redis_url)
    require_noeviction(connection)
    jobs.install(jobs.Context.create(settings))
    worker = SimpleWorker([get_queue(q, connection) for q in queues], connection=connection, serializer=JSONSerializer)
    stop = threading.Event()
    heartbeat = threading.Thread(target=_keep_alive, args=(settings, worker.name, stop), daemon=True)
    heartbeat.start()
    log.info("worker_started", queues=list(queues), name=worker.name)
    try:
        worker.work(burst=burst, with_scheduler=False, logging_level=settings.log_level)
    finally:
        stop.set()
        heartbeat.join(5)
        jobs.context().close()
        jobs.install(None)


def run_ticker(settings: WorkerSettings | None = None) -> None:
    """Run the ticker until SIGTERM or SIGINT (several may run at once)."""
    settings = settings or WorkerSettings()
    configure_logging(service="ticker", level=settings.log_level, json=settings.json_logs)
    engine = make_engine(settings.database_url, pool_size=2)
    redis = redis_from_url(settings.redis_url)
    require_noeviction(redis)
    try:
        run_ticker_loop(settings, engine, redis)
    finally:
        engine.dispose()
        redis.close()
