"""One runtime per worker process (libs/runtime.py): settings, engines and Redis built once, closed at shutdown."""

from __future__ import annotations

import pytest
from sqlalchemy.pool import QueuePool

from libs import runtime
from services.worker import jobs
from services.worker.main import run_worker
from services.worker.settings import WorkerSettings


def test_settings_engines_and_clients_are_built_once_and_closed(database_url: str, redis_url: str) -> None:
    process = runtime.Runtime()
    built: list[int] = []

    def build() -> WorkerSettings:
        built.append(1)
        return WorkerSettings(database_url=database_url, redis_url=redis_url)

    settings = process.settings(WorkerSettings, build)
    assert process.settings(WorkerSettings, build) is settings
    assert built == [1]
    engine = process.engine(database_url)
    assert process.engine(database_url) is engine
    assert process.redis(redis_url) is process.redis(redis_url)
    with engine.connect():
        pass
    pool = engine.pool
    assert isinstance(pool, QueuePool)
    assert pool.checkedin() == 1
    process.close()
    assert pool.checkedin() == 0  # disposed: no pooled connection left open
    assert process.engine(database_url) is not engine  # the next use opens a new one
    process.close()


def test_a_worker_shutting_down_closes_its_context_and_disposes_the_engine(
    database_url: str, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed: list[jobs.Context] = []
    close = jobs.Context.close

    def spy(self: jobs.Context) -> None:
        closed.append(self)
        close(self)

    monkeypatch.setattr(jobs.Context, "close", spy)
    process = runtime.current()
    engine = process.engine(database_url)
    with engine.connect():
        pass
    pool = engine.pool
    assert isinstance(pool, QueuePool)
    run_worker(["default"], settings=WorkerSettings(redis_url=redis_url, database_url=database_url), burst=True)
    assert len(closed) == 1
    assert closed[0].engine is engine  # the context ran on the runtime's engine
    assert pool.checkedin() == 0  # RQ stopped: the engine was disposed
    assert process.engine(database_url) is not engine
