"""libs.queue: the eviction guard services and workers run at startup (ARCHITECTURE.md R13)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from litestar.testing import TestClient
from redis import Redis

from libs.app import create_service_app
from libs.queue import RedisEvicts, require_noeviction
from libs.settings import CommonSettings
from services.worker.main import run_worker
from services.worker.settings import WorkerSettings


@pytest.fixture
def evicting(redis: Redis) -> Iterator[Redis]:
    """The test Redis switched to an evicting policy for the test, then restored."""
    before = redis.config_get("maxmemory-policy")["maxmemory-policy"]
    redis.config_set("maxmemory-policy", "allkeys-lru")
    try:
        yield redis
    finally:
        redis.config_set("maxmemory-policy", before)


def test_noeviction_passes(redis: Redis) -> None:
    assert redis.config_get("maxmemory-policy")["maxmemory-policy"] in (b"noeviction", "noeviction")
    require_noeviction(redis)


def test_an_evicting_redis_is_refused_by_the_guard_and_by_a_worker(
    evicting: Redis, redis_url: str, database_url: str
) -> None:
    with pytest.raises(RedisEvicts, match="allkeys-lru"):
        require_noeviction(evicting)
    with pytest.raises(RedisEvicts):
        run_worker(["default"], settings=WorkerSettings(redis_url=redis_url, database_url=database_url), burst=True)


def test_a_service_refuses_to_start_on_an_evicting_redis(evicting: Redis, settings: CommonSettings) -> None:
    app = create_service_app(name="probe", title="probe", settings=settings, route_handlers=[])
    with pytest.raises(BaseExceptionGroup) as failed, TestClient(app):  # the startup error, as anyio groups it
        pass
    assert failed.group_contains(RedisEvicts)
