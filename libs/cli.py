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

from libs.dev import edge
from libs.dev.settings import DevSettings
from libs.dev.state import Applied, use_running_system
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
    "mail": "services.campaign.mailbox.runner:run_mail",
    "create-operator": "services.auth.cli:create_operator",
    "resolve": "gateway.ops.cli:resolve_messages",
    "unknown": "gateway.ops.cli:list_unknown",
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


OWN_SYSTEM = frozenset({"dev", "sink"})
"""Commands that never look for a running ``sdr dev``: it is the system, or needs none."""
HELP = frozenset({"-h", "--help"})


class SdrGroup(click.Group):
    """The ``sdr`` group: a known user error (a server down, a bad URL, a port in use) ends in one line."""

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; turn the exception families of :mod:`libs.dev.edge` into one-line click errors."""
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:
            error = edge.translate(exc)
            if error is None:
                raise  # a bug: keep its traceback
            raise error from None


def running_system() -> Applied:
    """Return what the group found about a running ``sdr dev`` (nothing outside a command)."""
    ctx = click.get_current_context(silent=True)
    obj = ctx.find_root().obj if ctx is not None else None
    return obj if isinstance(obj, Applied) else Applied(None, None)


@click.group(
    cls=SdrGroup,
    context_settings={"help_option_names": ["-h", "--help"], "terminal_width": 100, "max_content_width": 100},
)
@click.pass_context
def main(ctx: click.Context) -> None:
    """Tidewater: run the whole system (sdr dev) or one of its processes."""
    die_with_supervisor()
    if ctx.invoked_subcommand == "sink" or ctx.resilient_parsing or HELP & set(ctx.args):
        return
    settings = DevSettings()
    if ctx.invoked_subcommand in OWN_SYSTEM:
        # sdr dev starts embedded servers for the URLs it is not given; check only the given ones.
        if "database_url" in settings.model_fields_set:
            edge.check_database_url(settings.database_url)
            edge.note(database_url=settings.database_url)
        if "redis_url" in settings.model_fields_set:
            edge.check_redis_url(settings.redis_url)
            edge.note(redis_url=settings.redis_url)
        return
    # Every other command uses what `sdr dev` runs on this data dir, unless given its own servers.
    given: dict[str, str] = {
        name: str(value.get_secret_value() if hasattr(value, "get_secret_value") else value)
        for name in ("database_url", "redis_url", "inbound_email_secret")
        if name in settings.model_fields_set and (value := getattr(settings, name)) is not None
    }
    applied = use_running_system(settings.data_dir, explicit=given)
    ctx.obj = applied
    if applied.message:
        click.echo(applied.message, err=True)
    settings = DevSettings() if applied.state is not None else settings
    edge.check_database_url(settings.database_url)
    edge.check_redis_url(settings.redis_url)
    edge.note(database_url=settings.database_url, redis_url=settings.redis_url)


@main.command()
@click.option("--database-url", envvar="SDR_DATABASE_URL", help="Defaults to SDR_DATABASE_URL.")
def migrate(database_url: str | None) -> None:
    """Create the database if it does not exist and upgrade it to the newest revision."""
    from libs.db.migrate import upgrade
    from libs.dev.embedded import ensure_database

    url = database_url or DevSettings().database_url
    edge.check_database_url(url)
    edge.note(database_url=url)
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

    from libs.dev.system import port_free
    from libs.logging import configure_logging

    settings = DevSettings()
    require(app, f"the {app} app")
    host, port = host or settings.host, port or settings.port_of(app)
    if not port_free(host, port):
        # uvicorn would log the bind error and exit 1; say what to do instead.
        raise edge.CliError(
            f"{host}:{port} is already in use",
            f"stop what listens there (is `./tidewater up` running?) or pass --port / set SDR_{app.upper()}_PORT",
        )
    configure_logging(service=app, level=settings.log_level, json=settings.json_logs)
    uvicorn.run(
        TARGETS[app],
        factory=True,
        host=host,
        port=port,
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
def mail() -> None:
    """Read the senders' mailboxes over IMAP (IDLE or polling) and feed new mail to the inbound path."""
    require("mail", "the mailbox poller")()


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
    redis_url, database_url = redis_url or settings.redis_url, database_url or settings.database_url
    edge.check_redis_url(redis_url, variable="--redis-url")
    edge.check_database_url(database_url, variable="--database-url")
    edge.note(database_url=database_url, redis_url=redis_url)
    redis = redis_from_url(redis_url)
    engine = make_engine(database_url, pool_size=1)
    try:
        while True:
            # Fail loudly (the edge says why, non-zero) rather than print empty queues.
            redis.ping()
            ledger_readable(engine)
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


def ledger_readable(engine: Any) -> None:
    """Read the ledger the way ``sdr status`` does; raise what the database raised when it cannot."""
    import sqlalchemy as sa

    from libs.db.session import system_session

    with system_session(engine) as session:
        session.connection().execute(sa.text("SELECT 1 FROM messages LIMIT 1"))


@main.command()
@click.argument("message", required=False)
@click.option("--body", default=None, help="The reply's text (a friendly default when omitted).")
@click.option("--bounce", is_flag=True, help="Feed an RFC 3464 bounce of MESSAGE instead of a reply.")
@click.option(
    "--status",
    "dsn_status",
    default="5.1.1",
    show_default=True,
    help="The bounce's DSN status: 5.x.x is a hard bounce, 4.x.x a soft one.",
)
@click.option("--url", default=None, help="The gateway (default: the running sdr dev's, else SDR_PUBLIC_BASE_URL).")
@click.option("--show", is_flag=True, help="Print the email that is sent.")
def reply(message: str | None, body: str | None, bounce: bool, dsn_status: str, url: str | None, show: bool) -> None:
    """Answer (or --bounce) a message of the local mail sink through /hooks/email/inbound.

    MESSAGE is a file, or a file name in <data dir>/mail/new; the newest message by default.
    The email is signed with SDR_INBOUND_EMAIL_SECRET, else the development secret of sdr dev.
    """
    import json

    from libs.dev.reply import DEFAULT_BODY, build_bounce, build_reply, find_message, post_inbound
    from libs.dev.state import SECRET_FILE, read_state

    settings = DevSettings()
    data_dir = settings.data_dir.expanduser().resolve()
    # The gateway and secret of the sdr dev on this data dir, even when the URLs were given.
    state = running_system().state or read_state(data_dir).state
    path = find_message(data_dir, message)
    original = path.read_bytes()
    raw = build_bounce(original, status=dsn_status) if bounce else build_reply(original, body or DEFAULT_BODY)
    secret = settings.inbound_email_secret.get_secret_value() if settings.inbound_email_secret else None
    secret = secret or (state.inbound_email_secret if state is not None else None)
    if secret is None and (data_dir / SECRET_FILE).exists():
        secret = (data_dir / SECRET_FILE).read_text(encoding="utf-8").strip() or None
    if secret is None:
        raise edge.CliError(
            "no inbound-mail secret to sign with", "set SDR_INBOUND_EMAIL_SECRET, or start `./tidewater up` once"
        )
    gateway = url or (state.gateway_url if state is not None else None)
    gateway = gateway or settings.public_base_url or settings.url_of("gateway")
    if show:
        click.echo(raw.decode("utf-8", "replace"))
    response = post_inbound(gateway, raw, secret)
    try:
        answer: Any = response.json()
    except ValueError:
        answer = response.text[:500]
    what = "bounce" if bounce else "reply"
    if response.status_code >= 400:
        detail = answer.get("detail", answer) if isinstance(answer, dict) else answer
        hint = (
            "sign with the secret `./tidewater up` printed (SDR_INBOUND_EMAIL_SECRET)"
            if response.status_code in (401, 403)
            else "see the gateway's log"
        )
        refused = f"the inbound hook refused the {what} of {path.name} ({response.status_code}: {detail})"
        raise edge.CliError(refused, hint)
    click.echo(f"{what} to {path.name} -> {response.status_code} {json.dumps(answer)}")


@main.command("resolve")
@click.argument("message_ids", nargs=-1, required=True, metavar="MESSAGE_ID...")
@click.option("--delivered", is_flag=True, help="The provider has it: mark it sent; the enrollment moves on.")
@click.option("--resend", is_flag=True, help="It never arrived: queue it to be sent once more.")
@click.option("--failed", is_flag=True, help="It never arrived: mark it failed; the enrollment moves on.")
@click.option("--operator", "operator_email", required=True, metavar="EMAIL", help="Who decides (an operator).")
@click.option("--note", default=None, help="Why, kept with the decision in each message's events.")
@click.option("--database-url", envvar="SDR_DATABASE_URL", help="Defaults to SDR_DATABASE_URL.")
@click.option("--redis-url", envvar="SDR_REDIS_URL", help="Defaults to SDR_REDIS_URL.")
def resolve_unknown(
    message_ids: tuple[str, ...],
    delivered: bool,
    resend: bool,
    failed: bool,
    operator_email: str,
    note: str | None,
    database_url: str | None,
    redis_url: str | None,
) -> None:
    """Resolve messages whose send outcome is unknown (one line each; exit 1 if any was not resolved)."""
    chosen = [name for name, on in (("delivered", delivered), ("resend", resend), ("failed", failed)) if on]
    if len(chosen) != 1:
        raise click.UsageError("Choose exactly one of --delivered, --resend or --failed.")
    settings = DevSettings()
    target = require("resolve", "resolving messages", process=False)
    refused = target(
        message_ids,
        chosen[0],
        operator_email,
        note,
        database_url=database_url or settings.database_url,
        redis_url=redis_url or settings.redis_url,
    )
    if refused:
        raise SystemExit(1)


@main.command("unknown")
@click.option("--limit", type=click.IntRange(1, 10_000), default=100, show_default=True, help="At most this many.")
@click.option("--database-url", envvar="SDR_DATABASE_URL", help="Defaults to SDR_DATABASE_URL.")
def list_unknown(limit: int, database_url: str | None) -> None:
    """List the messages whose send outcome is unknown, oldest first (resolve them with sdr resolve)."""
    target = require("unknown", "listing unknown messages", process=False)
    target(database_url=database_url or DevSettings().database_url, limit=limit)


@main.group()
def analytics() -> None:
    """Campaign analytics' rollups."""


@analytics.command("rebuild")
@click.option("--campaign", "campaign_id", type=click.UUID, default=None, help="Only this campaign (default: all).")
@click.option("--database-url", envvar="SDR_DATABASE_URL", help="Defaults to SDR_DATABASE_URL.")
def analytics_rebuild(campaign_id: Any, database_url: str | None) -> None:
    """Recompute the rollups from the raw events and enrollments, one transaction per campaign.

    Writers of events and enrollments wait while a campaign is recomputed (its transaction locks
    the rollup tables against writes); analytics requests keep reading.
    """
    import sqlalchemy as sa

    from libs.db.models.analytics import rebuild
    from libs.db.session import make_engine, system_session

    engine = make_engine(database_url or DevSettings().database_url, pool_size=1)
    try:
        with system_session(engine) as session:
            found = session.execute(
                sa.text("SELECT id FROM campaigns WHERE CAST(:c AS uuid) IS NULL OR id = CAST(:c AS uuid) ORDER BY id"),
                {"c": campaign_id},
            )
            ids = list(found.scalars())
        if campaign_id is not None and not ids:
            raise click.ClickException(f"no campaign {campaign_id}")
        for one in ids:
            with system_session(engine) as session:
                rebuild(session.connection(), one)
            click.echo(f"rebuilt {one}")
    finally:
        engine.dispose()


@main.command()
def dev() -> None:
    """Start the whole system on this machine; Ctrl-C stops every process."""
    from libs.dev.system import run_dev

    raise SystemExit(run_dev(DevSettings()))


if __name__ == "__main__":
    main()
