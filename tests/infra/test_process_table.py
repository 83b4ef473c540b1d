"""The process table (libs/processes.py) names only what ``sdr`` has: its commands, queues and settings."""

from __future__ import annotations

import click
import pytest

from libs.cli import APPS, main
from libs.dev.settings import DevSettings
from libs.processes import (
    APPS as HTTP_PROCESSES,
)
from libs.processes import (
    BY_NAME,
    COMMON,
    PROCESSES,
    SECRETS,
    WORKERS,
    Kind,
    Process,
    probe,
    probe_url,
    rq_queue_key,
)
from libs.queue import ALL_QUEUES
from tests.infra.support import every_setting, read_by


def test_every_kind_the_deployment_needs_is_in_the_table() -> None:
    kinds = {p.kind for p in PROCESSES}
    assert kinds == set(Kind)
    assert {p.name for p in HTTP_PROCESSES} == set(APPS)
    assert PROCESSES[0].name == "migrate", "migrations run before everything else"
    assert [p.name for p in HTTP_PROCESSES][-1] == "gateway", "the gateway starts after the services"
    assert sorted(q for w in WORKERS for q in w.queues) == sorted(ALL_QUEUES), "each queue in exactly one group"
    assert len(BY_NAME) == len(PROCESSES)


@pytest.mark.parametrize("process", PROCESSES, ids=lambda p: p.name)
def test_the_command_is_one_sdr_accepts(process: Process) -> None:
    command = main.commands.get(process.subcommand)
    assert command is not None, f"sdr has no command {process.subcommand!r}"
    # Parse exactly as sdr would, without running anything.
    ctx = command.make_context(process.subcommand, list(process.args[1:]), parent=click.Context(main))
    if process.kind is Kind.WORKER:
        assert ctx.params["queues"] == ",".join(process.queues)
    if process.port is not None:
        assert ctx.params["port"] == process.port == DevSettings().port_of(process.name)
        assert ctx.params["app"] == process.name


@pytest.mark.parametrize("process", PROCESSES, ids=lambda p: p.name)
def test_every_variable_is_one_the_process_reads(process: Process) -> None:
    assert set(COMMON) <= set(process.env)
    unread = process.allowed - read_by(process)
    assert not unread, f"{process.name} is given variables no settings class of it reads: {sorted(unread)}"


def test_every_secret_is_a_setting() -> None:
    assert every_setting() >= SECRETS


def test_http_processes_have_probes_and_others_none() -> None:
    for p in PROCESSES:
        assert (p.health_path, p.ready_path) == (("/healthz", "/readyz") if p.kind is Kind.HTTP else (None, None))


def test_the_probe_asks_the_served_apps_healthz() -> None:
    assert probe_url(["/app/.venv/bin/python", "/app/.venv/bin/sdr", *BY_NAME["campaign"].args]) == (
        "http://127.0.0.1:8003/healthz"
    )
    assert probe_url(["sdr", "serve", "auth"]) == "http://127.0.0.1:8001/healthz"
    assert probe_url(["sdr", *BY_NAME["worker-email"].args]) is None
    assert probe(["sdr", "ticker"]) == 0
    # Nothing listens on a port just freed: the probe fails instead of hanging.
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert probe(["sdr", "serve", "gateway", "--port", str(port)], timeout=1.0) == 1


def test_rq_queue_keys_are_the_lists_rq_pushes_jobs_to() -> None:
    from rq import Queue

    assert rq_queue_key("email") == f"{Queue.redis_queue_namespace_prefix}email" == "rq:queue:email"


def test_no_file_under_infra_names_a_variable_sdr_does_not_read() -> None:
    from tests.infra.support import INFRA, sdr_variables

    for path in INFRA.rglob("*"):
        if path.is_file():
            unread = sdr_variables(path.read_text()) - every_setting()
            assert not unread, f"{path.relative_to(INFRA)} names {sorted(unread)}, which no settings class reads"


def test_sdr_dev_runs_the_same_processes_on_one_machine() -> None:
    from libs.dev.system import app_children

    children = app_children(DevSettings(), {})
    commands = {tuple(child.argv[3:5]) if child.argv[3] == "serve" else (child.argv[3],) for child in children}
    table = {tuple(p.args[:2]) if p.subcommand == "serve" else (p.subcommand,) for p in PROCESSES}
    # sdr dev migrates in-process before its children start, and adds the development mail sink.
    assert commands == (table - {("migrate",)}) | {("sink",)}
    worker = next(child for child in children if child.argv[3] == "worker")
    assert sorted(worker.argv[-1].split(",")) == sorted(q for w in WORKERS for q in w.queues)
