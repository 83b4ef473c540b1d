"""The ``sdr`` command line: run the system on one machine, or each process on its own.

This is the composition root. It names the boxes only by the dotted paths in ``TARGETS``
and imports them when a command runs, so ``libs`` never imports ``gateway`` or ``services``.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from libs.dev.settings import DevSettings
from libs.dev.supervisor import EXIT_UNAVAILABLE, ChildSpec, Supervisor, die_with_supervisor

APPS = ("gateway", "auth", "brand", "campaign")

TARGETS: dict[str, str] = {
    "gateway": "gateway.app:create_app",
    "auth": "services.auth.app:create_app",
    "brand": "services.brand.app:create_app",
    "campaign": "services.campaign.app:create_app",
    "worker": "services.worker.main:run_worker",
    "ticker": "services.worker.main:run_ticker",
    "sink": "services.worker.sinks:run_sink",
    "create-operator": "services.auth.cli:create_operator",
}
"""Every entry point of the boxes, by dotted path ``module:attribute``."""


class TargetMissing(click.ClickException):
    """An entry point named in ``TARGETS`` does not exist (yet)."""

    exit_code = 1


class ProcessUnavailable(TargetMissing):
    """A long-running process has no entry point: exit so that a supervisor never restarts it."""

    exit_code = EXIT_UNAVAILABLE


def resolve(name: str) -> Callable[..., Any] | None:
    """Import the entry point ``TARGETS[name]``; ``None`` when its module or attribute does not exist."""
    module_name, _, attribute = TARGETS[name].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        # Only the target itself may be missing; a broken import inside it must stay loud.
        if exc.name is None or not (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise
        return None
    target = getattr(module, attribute, None)
    return target if callable(target) else None


def require(name: str, what: str, *, process: bool = True) -> Callable[..., Any]:
    """Return the entry point ``name`` or fail with a message saying what is not available."""
    target = resolve(name)
    if target is None:
        error = ProcessUnavailable if process else TargetMissing
        raise error(f"{what} is not available: {TARGETS[name]} does not exist in this installation.")
    return target


def _queues(value: str) -> list[str]:
    from libs.queue import ALL_QUEUES

    names = [part.strip() for part in value.split(",") if part.strip()]
    known = {str(q) for q in ALL_QUEUES}
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        raise click.BadParameter(f"unknown queue(s) {', '.join(unknown) or '(none given)'}; known: {', '.join(known)}")
    return names


@click.group(context_settings={"help_option_names": ["-h", "--help"], "terminal_width": 100, "max_content_width": 100})
def main() -> None:
    """Tidewater: run the whole system (sdr dev) or one of its processes."""
    die_with_supervisor()


@main.command()
@click.option("--database-url", envvar="SDR_DATABASE_URL", help="Defaults to SDR_DATABASE_URL.")
def migrate(database_url: str | None) -> None:
    """Create the database if it does not exist and upgrade it to the newest revision."""
    from libs.db.migrate import upgrade
    from libs.dev.embedded import ensure_database

    url = database_url or DevSettings().database_url
    if ensure_database(url):
        click.echo("created the database")
    upgrade(url)
    click.echo("database is at head")


@main.command()
@click.argument("app", type=click.Choice(APPS))
@click.option("--host", default=None, help="Bind address (SDR_HOST, default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (SDR_<APP>_PORT; gateway 8000, auth 8001, ...).")
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True, help="Uvicorn processes.")
def serve(app: str, host: str | None, port: int | None, workers: int) -> None:
    """Serve the gateway or one service with uvicorn (uvloop, httptools)."""
    import uvicorn

    from libs.logging import configure_logging

    settings = DevSettings()
    require(app, f"the {app} app")
    configure_logging(service=app, level=settings.log_level, json=settings.json_logs)
    uvicorn.run(
        TARGETS[app],
        factory=True,
        host=host or settings.host,
        port=port or settings.port_of(app),
        workers=workers,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=5,
    )


@main.command()
@click.option("--queues", default=None, help="Comma-separated queues (default: every queue).")
@click.option("--processes", type=click.IntRange(1, 256), default=1, show_default=True, help="Worker processes.")
def worker(queues: str | None, processes: int) -> None:
    """Run RQ workers; with --processes N, N supervised worker processes."""
    from libs.queue import ALL_QUEUES

    names = _queues(queues) if queues else [str(q) for q in ALL_QUEUES]
    if processes == 1:
        require("worker", "the worker")(names)
        return
    # The children import the worker box; the supervisor stays small and starts at once.
    settings = DevSettings()
    supervisor = Supervisor(grace=settings.dev_grace_seconds)
    with supervisor:
        for i in range(1, processes + 1):
            argv = [sys.executable, "-m", "libs.cli", "worker", "--queues", ",".join(names)]
            supervisor.add(ChildSpec(name=f"worker-{i}", argv=argv))
        supervisor.run()
    if supervisor.failed:
        raise SystemExit(1)


@main.command()
def ticker() -> None:
    """Run the ticker: turn due enrollments into queued messages."""
    run_ticker = resolve("ticker")
    if run_ticker is None:
        raise ProcessUnavailable(f"the ticker is not available yet: {TARGETS['ticker']} does not exist.")
    run_ticker()


@main.command()
@click.option("--host", default=None, help="Bind address (SDR_SMTP_SINK_HOST, default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (SDR_SMTP_SINK_PORT, default 1025).")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None, help="SDR_DATA_DIR.")
def sink(host: str | None, port: int | None, data_dir: Path | None) -> None:
    """Run the local SMTP sink: every message is kept under <data dir>/mail and logged."""
    run_sink = require("sink", "the SMTP sink")
    run_sink(host=host, port=port, data_dir=data_dir)


@main.command("create-operator")
@click.argument("email")
def create_operator(email: str) -> None:
    """Create (or promote) a platform operator account for EMAIL."""
    target = require("create-operator", "creating operators", process=False)
    result = target(email)
    if result is not None:
        click.echo(result)


@main.command()
@click.option("--watch", is_flag=True, help="Redraw every --interval seconds until Ctrl-C.")
@click.option("--interval", type=click.FloatRange(0.5, 3600), default=2.0, show_default=True, help="Seconds.")
@click.option("--redis-url", envvar="SDR_REDIS_URL", help="Defaults to SDR_REDIS_URL.")
@click.option("--database-url", envvar="SDR_DATABASE_URL", help="Defaults to SDR_DATABASE_URL.")
def status(watch: bool, interval: float, redis_url: str | None, database_url: str | None) -> None:
    """Print the queues, workers and the messages whose outcome is unknown (--watch refreshes it)."""
    import time

    from libs.db.session import make_engine
    from libs.queue import redis_from_url
    from libs.queue_stats import status_text

    settings = DevSettings()
    redis = redis_from_url(redis_url or settings.redis_url)
    engine = make_engine(database_url or settings.database_url, pool_size=1)
    try:
        while True:
            text = status_text(redis, engine)
            if watch:
                click.clear()
            click.echo(text)
            if not watch:
                return
            time.sleep(interval)
    except KeyboardInterrupt:
        pass
    finally:
        engine.dispose()
        redis.close()


@main.command()
def dev() -> None:
    """Start the whole system on this machine; Ctrl-C stops every process."""
    from libs.dev.system import run_dev

    raise SystemExit(run_dev(DevSettings()))


if __name__ == "__main__":
    main()
