"""``sdr dev``: the whole system on one machine, as supervised processes.

Order of events: embedded PostgreSQL and Redis when no URL is given, the database created
and migrated, then the gateway, the three services, the workers, the ticker (when the worker
box has one) and the SMTP sink, each a separate ``sdr`` process. Once the gateway's
``/readyz`` is green the URLs are printed; from then on a child that dies is reported with
its exit code and restarted with backoff, and Ctrl-C or SIGTERM stops everything.

Once up, ``<data dir>/dev.json`` says where the system is (``libs.dev.state``), so that every
other ``sdr`` command run in the same project talks to it; a clean stop removes the file.

The data dir is private (``libs.dev.private``): ``sdr dev`` and every child run with umask 077
and what an earlier run left open is closed at start. The embedded Redis requires a password
kept in ``<data dir>/redis-password``; the URLs the children and ``dev.json`` get carry it, and
every line printed shows it masked.
"""

from __future__ import annotations

import fcntl
import logging
import os
import socket
import sys
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx
from sqlalchemy.engine import make_url

from libs.db.migrate import upgrade
from libs.dev.edge import CliError
from libs.dev.embedded import embedded_postgres, ensure_database, free_port, redis_child, redis_url, wait_for_redis
from libs.dev.private import private_umask, secure_tree, share_traversal
from libs.dev.reply import INBOUND_EMAIL_PATH
from libs.dev.settings import DevSettings
from libs.dev.state import (
    SECRET_FILE,
    DevState,
    dev_inbound_secret,
    dev_redis_password,
    hide_password,
    remove_state,
    write_state,
)
from libs.dev.supervisor import ChildSpec, Supervisor
from libs.logging import configure_logging
from libs.processes import APPS, PUBLIC
from libs.queue import ALL_QUEUES
from libs.settings import Environment
from libs.webbuild import WebBuildError, ensure_built

SERVICES: tuple[str, ...] = tuple(p.name for p in APPS if p.name != PUBLIC)
"""The services ``sdr dev`` runs behind the gateway, in start order (the process table's: auth, brand, campaign)."""

MAIL_FOLDER = "mail"
"""The SMTP sink's maildir under the data dir (``services.worker.sinks.MAIL_FOLDER``)."""


class DevFailed(RuntimeError):
    """``sdr dev`` could not bring the system up or had to stop it."""


@dataclass(frozen=True, slots=True)
class Resolved:
    """Where the running system's state lives, after embedded servers started."""

    data_dir: Path
    database_url: str
    redis_url: str
    embedded_postgres: bool
    embedded_redis: bool
    postmaster_pid: int = 0
    inbound_email_secret: str | None = None
    """The development inbound-mail secret ``sdr dev`` generated; ``None`` when the user set one."""


def sdr_argv(*args: str) -> list[str]:
    """Return the command line that runs ``sdr <args>`` with this interpreter."""
    return [sys.executable, "-m", "libs.cli", *args]


def child_environment(settings: DevSettings, resolved: Resolved) -> dict[str, str]:
    """Return the environment every child gets: the resolved URLs and where each process listens."""
    env = dict(os.environ)
    env.update(
        {
            "SDR_DATA_DIR": str(resolved.data_dir),
            "SDR_DATABASE_URL": resolved.database_url,
            "SDR_REDIS_URL": resolved.redis_url,
            "SDR_JWKS_URL": f"{settings.url_of('auth')}/api/auth/jwks.json",
            "SDR_AUTH_URL": settings.url_of("auth"),
            "SDR_BRAND_URL": settings.url_of("brand"),
            "SDR_CAMPAIGN_URL": settings.url_of("campaign"),
            "SDR_PUBLIC_BASE_URL": settings.url_of("gateway"),
            "SDR_SMTP_SINK_HOST": settings.smtp_sink_host,
            "SDR_SMTP_SINK_PORT": str(settings.smtp_sink_port),
            "SDR_ENV": settings.env.value,
        }
    )
    if resolved.inbound_email_secret is not None:
        env["SDR_INBOUND_EMAIL_SECRET"] = resolved.inbound_email_secret
    return env


def development_secret(settings: DevSettings, data_dir: Path) -> str | None:
    """Return the inbound-mail secret ``sdr dev`` gives its children; ``None`` if the user set one (or production)."""
    if settings.inbound_email_secret is not None or settings.env is Environment.PRODUCTION:
        return None
    return dev_inbound_secret(data_dir)


def busy_ports(settings: DevSettings) -> list[str]:
    """Return ``name host:port`` for every address ``sdr dev`` would listen on that something else holds now."""
    wanted = [(app, settings.host, settings.port_of(app)) for app in (*SERVICES, "gateway")]
    wanted.append(("sink", settings.smtp_sink_host, settings.smtp_sink_port))
    if settings.embedded_redis_port and "redis_url" not in settings.model_fields_set:
        wanted.append(("redis", "127.0.0.1", settings.embedded_redis_port))
    return [f"{name} {host}:{port}" for name, host, port in wanted if not port_free(host, port)]


def port_free(host: str, port: int) -> bool:
    """Whether ``host:port`` can be listened on now (as uvicorn does it, with SO_REUSEADDR)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def app_children(settings: DevSettings, env: dict[str, str]) -> list[ChildSpec]:
    """Return the children of the running system, services first and the gateway last."""
    serve = [
        ChildSpec(
            name=app,
            argv=sdr_argv("serve", app, "--host", settings.host, "--port", str(settings.port_of(app))),
            env=env,
        )
        for app in (*SERVICES, "gateway")
    ]
    queues = ",".join(str(q) for q in ALL_QUEUES)
    workers = [
        ChildSpec(name=f"worker-{i}", argv=sdr_argv("worker", "--queues", queues), env=env)
        for i in range(1, settings.dev_workers + 1)
    ]
    # `sdr ticker` exits with EXIT_UNAVAILABLE while the worker box has no ticker: not restarted.
    ticker = ChildSpec(name="ticker", argv=sdr_argv("ticker"), env=env)
    mail = ChildSpec(name="mail", argv=sdr_argv("mail"), env=env)
    sink = ChildSpec(
        name="sink",
        argv=sdr_argv("sink", "--host", settings.smtp_sink_host, "--port", str(settings.smtp_sink_port)),
        env=env,
    )
    return [*serve, *workers, ticker, mail, sink]


def readiness(url: str) -> tuple[bool, Any]:
    """Return whether ``url`` answers 200 now, and the body it answered (or the error)."""
    try:
        response = httpx.get(url, timeout=2.0)
    except httpx.HTTPError as exc:
        return False, type(exc).__name__
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text[:200]
    return response.status_code == 200, body


def wait_until_ready(supervisor: Supervisor, url: str, *, timeout: float) -> Any:
    """Supervise while polling ``url`` until it is green; raise :class:`DevFailed` on timeout or stop."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while not supervisor.stop_requested:
        ready, last = readiness(url)
        if ready:
            return last
        if time.monotonic() > deadline:
            raise DevFailed(f"{url} was not green after {timeout:.0f}s; last answer: {last}")
        supervisor.step(0.25)
    raise DevFailed("stopped before the system was ready")


def banner(settings: DevSettings, resolved: Resolved, ready: Any) -> list[str]:
    """Return the lines printed once the system is up."""
    gateway = settings.url_of("gateway")
    parsed = make_url(resolved.database_url)
    database = parsed.render_as_string(hide_password=bool(parsed.password))
    lines = [
        "",
        "Tidewater is up.",
        f"  gateway      {gateway}",
        f"  API docs     {gateway}/api/docs",
        f"  OpenAPI      {gateway}/api/openapi.json",
        f"  readiness    {gateway}/readyz",
        f"  mail sink    smtp://{settings.smtp_sink_host}:{settings.smtp_sink_port}"
        f" -> {resolved.data_dir / MAIL_FOLDER / 'new'}",
        f"  database     {database}{'  (embedded)' if resolved.embedded_postgres else ''}",
        f"  redis        {hide_password(resolved.redis_url)}{'  (embedded)' if resolved.embedded_redis else ''}",
        f"  data dir     {resolved.data_dir}",
        f"  inbound mail {gateway}{INBOUND_EMAIL_PATH}",
    ]
    if resolved.inbound_email_secret is not None:
        lines.append(
            f"  mail secret  {resolved.inbound_email_secret}  (development, kept in {resolved.data_dir / SECRET_FILE})"
        )
    else:
        lines.append("  mail secret  SDR_INBOUND_EMAIL_SECRET (yours)")
    lines.append("  try          sdr reply --body 'Sounds good'   (answers the newest mail in the sink)")
    checks = ready.get("checks") if isinstance(ready, dict) else None
    if isinstance(checks, dict):
        lines.append("  readyz       " + ", ".join(f"{name}={_state(state)}" for name, state in checks.items()))
    lines += ["Press Ctrl-C to stop every process.", ""]
    return lines


def _state(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("status") or value.get("state") or value)
    return str(value)


def run_dev(settings: DevSettings, *, supervisor: Supervisor | None = None) -> int:
    """Run the whole system until Ctrl-C or SIGTERM; return the process exit code."""
    configure_logging(service="sdr", level=settings.log_level, json=settings.json_logs)
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    # Everything this process and its children (Redis, PostgreSQL, the services) create is ours alone.
    private_umask()
    data_dir = settings.data_dir.expanduser().resolve()
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    supervisor = supervisor or Supervisor(grace=settings.dev_grace_seconds)
    given = settings.model_fields_set
    lock = _lock_data_dir(data_dir)
    if lock is None:
        supervisor.say(f"!!! another sdr dev is running on {data_dir}: stop it first or set SDR_DATA_DIR")
        return 1
    busy = busy_ports(settings)
    if busy:
        raise CliError(
            f"port already in use: {', '.join(busy)}",
            "stop what listens there (another `./tidewater up`?) "
            "or set SDR_GATEWAY_PORT, SDR_AUTH_PORT, ... to free ports",
        )
    opened = secure_tree(data_dir)  # once the lock is ours: another sdr dev's PostgreSQL may need to enter
    if opened:
        supervisor.say(f"made {len(opened)} entries of {data_dir} private to you (group and others had access)")
    secret = development_secret(settings, data_dir)
    try:  # the web client is rebuilt only when its sources changed since the last build
        ensure_built(Path(__file__).resolve().parents[2], say=supervisor.say)
    except WebBuildError as exc:
        supervisor.say(f"!!! web client not built: {exc}")
    # Signals are handled from the first moment; children stop before the servers they use.
    with supervisor, ExitStack() as servers:
        try:
            resolved = _start_backing_servers(servers, supervisor, settings, data_dir, given, secret)
            if supervisor.stop_requested:
                return 0
            env = child_environment(settings, resolved)
            for spec in app_children(settings, env):
                supervisor.add(spec)
            ready = wait_until_ready(
                supervisor, f"{settings.url_of('gateway')}/readyz", timeout=settings.dev_ready_timeout
            )
            write_state(data_dir, state_of(settings, resolved))
            for line in banner(settings, resolved, ready):
                supervisor.say(line)
            supervisor.run(until=lambda: _postgres_died(supervisor, resolved.postmaster_pid))
            if not supervisor.stop_requested:
                return 1
        except DevFailed as exc:
            if supervisor.stop_requested and not supervisor.failed:
                return 0
            supervisor.say(f"!!! {exc}")
            return 1
        finally:
            remove_state(data_dir, os.getpid())
            supervisor.stop()
            supervisor.say("every child stopped" + (", stopping PostgreSQL" if "database_url" not in given else ""))
    if supervisor.failed:
        supervisor.say("every process stopped, after a failure (see the lines marked !!! above)")
        return 1
    supervisor.say("every process stopped")
    return 0


def state_of(settings: DevSettings, resolved: Resolved) -> DevState:
    """Return what the state file says about the running system."""
    return DevState(
        pid=os.getpid(),
        data_dir=str(resolved.data_dir),
        database_url=resolved.database_url,
        redis_url=resolved.redis_url,
        gateway_url=settings.url_of("gateway"),
        inbound_email_secret=resolved.inbound_email_secret,
        started_at=time.time(),
    )


def _lock_data_dir(data_dir: Path) -> IO[str] | None:
    """Hold an exclusive lock on ``data_dir`` for this process's life; ``None`` when another holds it."""
    handle = (data_dir / "dev.lock").open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle  # released by the kernel when the process ends, however it ends


def _postgres_died(supervisor: Supervisor, pid: int) -> bool:
    """Whether the embedded PostgreSQL (not our child: pg_ctl detaches it) is gone; say so loudly."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        supervisor.say(f"!!! the embedded PostgreSQL (pid {pid}) is gone: stopping everything")
        return True
    except PermissionError:
        return False
    return False


def _start_backing_servers(
    stack: ExitStack,
    supervisor: Supervisor,
    settings: DevSettings,
    data_dir: Path,
    given: Sequence[str] | set[str],
    secret: str | None,
) -> Resolved:
    embedded_pg = "database_url" not in given
    embedded_redis = "redis_url" not in given
    database_url = settings.database_url
    postmaster_pid = 0
    if embedded_pg:
        supervisor.say(f"starting embedded PostgreSQL in {data_dir / 'postgres'}")
        postgres = stack.enter_context(embedded_postgres(data_dir / "postgres"))
        database_url = postgres.url
        postmaster_pid = postgres.pid
        # pgserver opened the folders above its data folder to everyone: close the data dir again.
        share_traversal(data_dir, postgres.server_gid)
        if not postgres.private_socket:
            supervisor.say(
                f"!!! the embedded PostgreSQL's socket is in {postgres.socket_dir}, outside the data dir"
                " (its path is too long for a socket), and it trusts every local login: use a shorter SDR_DATA_DIR"
            )
    else:
        share_traversal(data_dir, None)
    url = settings.redis_url
    if embedded_redis:
        port = settings.embedded_redis_port or free_port()
        password = dev_redis_password(data_dir)
        url = redis_url(port, password)
        supervisor.say(f"starting embedded Redis on 127.0.0.1:{port} in {data_dir / 'redis'} (password required)")
        supervisor.add(redis_child(data_dir / "redis", port=port, password=password))
    try:
        wait_for_redis(url)
    except TimeoutError as exc:
        raise DevFailed(str(exc)) from exc
    if ensure_database(database_url):
        supervisor.say(f"created database {make_url(database_url).database}")
    supervisor.say("migrating the database to head")
    upgrade(database_url)
    return Resolved(
        data_dir=data_dir,
        database_url=database_url,
        redis_url=url,
        embedded_postgres=embedded_pg,
        postmaster_pid=postmaster_pid,
        embedded_redis=embedded_redis,
        inbound_email_secret=secret,
    )
