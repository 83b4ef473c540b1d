"""Process entry points of the worker box: RQ workers on the channel queues."""

from __future__ import annotations

from collections.abc import Sequence

import structlog
from rq import SimpleWorker
from rq.serializers import JSONSerializer

from libs.logging import configure_logging
from libs.queue import ALL_QUEUES, get_queue, redis_from_url
from services.worker.settings import WorkerSettings

log = structlog.get_logger(__name__)


def run_worker(
    queues: Sequence[str] = ALL_QUEUES, *, settings: WorkerSettings | None = None, burst: bool = False
) -> None:
    """Run one non-forking RQ worker over ``queues`` until stopped (or until empty with ``burst``)."""
    settings = settings or WorkerSettings()
    configure_logging(service="worker", level=settings.log_level, json=settings.json_logs)
    connection = redis_from_url(settings.redis_url)
    worker = SimpleWorker([get_queue(q, connection) for q in queues], connection=connection, serializer=JSONSerializer)
    log.info("worker_started", queues=list(queues), name=worker.name)
    worker.work(burst=burst, with_scheduler=False, logging_level=settings.log_level)
