"""What one worker process keeps between jobs: settings, database engines and Redis clients, built once.

Every job that runs in a worker process (the worker's sends, the campaign service's imports and
inbound jobs) takes its resources from :func:`current` instead of holding its own: the settings
are read from the environment and validated on first use, not on every job; an engine and a
Redis client are opened once per URL, lazily, so a worker that never meets a job kind never pays
for it. The worker's main calls :func:`close` when RQ stops taking jobs, which disposes every
engine and closes every Redis client.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from redis import Redis
from sqlalchemy import Engine

from libs.db.session import make_engine
from libs.queue import redis_from_url

S = TypeVar("S")


class Closeable(Protocol):
    """A process resource the runtime closes at shutdown (the worker's send context)."""

    def close(self) -> None:
        """Release what it holds."""


C = TypeVar("C", bound=Closeable)
ENGINE_POOL_SIZE = 2
"""Connections per engine: a worker runs one job at a time, plus its claim and lease threads."""


class Runtime:
    """One process's settings, engines and Redis clients; thread-safe, each built on first use."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._settings: dict[type[Any], Any] = {}
        self._engines: dict[str, Engine] = {}
        self._redis: dict[str, Redis] = {}
        self._held: dict[str, Closeable] = {}

    def settings(self, kind: type[S], factory: Callable[[], S] | None = None) -> S:
        """The process's settings of class ``kind``, built (``factory`` or ``kind()``) and validated once."""
        with self._lock:
            found = self._settings.get(kind)
            if found is None:
                found = self._settings[kind] = (factory or kind)()
            return found

    def install_settings(self, value: object) -> None:
        """Use ``value`` as the process's settings of its class (the worker's main, tests)."""
        with self._lock:
            self._settings[type(value)] = value

    def engine(self, url: str) -> Engine:
        """The process's engine on ``url``, opened on first use."""
        with self._lock:
            found = self._engines.get(url)
            if found is None:
                found = self._engines[url] = make_engine(url, pool_size=ENGINE_POOL_SIZE)
            return found

    def redis(self, url: str) -> Redis:
        """The process's Redis client on ``url``, opened on first use."""
        with self._lock:
            found = self._redis.get(url)
            if found is None:
                found = self._redis[url] = redis_from_url(url)
            return found

    def resource(self, key: str, factory: Callable[[], C]) -> C:
        """The process's resource ``key``, built by ``factory`` on first use and closed by :meth:`close`."""
        with self._lock:
            found = self._held.get(key)
            if found is None:
                found = self._held[key] = factory()
            return found  # type: ignore[return-value]

    def install(self, key: str, value: Closeable | None) -> None:
        """Hold ``value`` as resource ``key`` (``None`` forgets it, unclosed: its installer closes it)."""
        with self._lock:
            if value is None:
                self._held.pop(key, None)
            else:
                self._held[key] = value

    def close(self) -> None:
        """Close the held resources, dispose every engine, close every Redis client, forget the settings."""
        with self._lock:
            held = list(self._held.values())
            engines, clients = list(self._engines.values()), list(self._redis.values())
            self._held.clear()
            self._engines.clear()
            self._redis.clear()
            self._settings.clear()
        for resource in held:
            resource.close()
        for engine in engines:
            engine.dispose()
        for client in clients:
            client.close()


_current = Runtime()


def current() -> Runtime:
    """The process's runtime."""
    return _current


def close() -> None:
    """Release the process's resources; the next use opens them again."""
    _current.close()
