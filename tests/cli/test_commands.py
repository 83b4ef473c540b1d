"""``sdr migrate``, ``sdr sink``, ``sdr worker`` and the entry points the CLI finds by path."""

from __future__ import annotations

import email
import email.policy
import os
import signal
import smtplib
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory
from click.testing import CliRunner
from redis import Redis
from rq import Worker

from libs.cli import TARGETS, main
from libs.db.migrate import alembic_config
from libs.dev.supervisor import EXIT_UNAVAILABLE
from tests.conftest import ROOT
from tests.support.servers import drop_database, free_port, with_database

SDR = str(Path(sys.executable).with_name("sdr"))


def clean_env(**values: str) -> dict[str, str]:
    """The test's environment without any SDR_ variable, plus ``values``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SDR_")}
    return {**env, **values}


def wait_until(predicate: object, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return False
    return True


def idle_workers(redis: Redis) -> int:
    return sum(1 for worker in Worker.all(connection=redis) if worker.get_state() == "idle")


@pytest.fixture
def fresh_database_url(pg_server_url: str) -> Iterator[str]:
    """A database URL whose database does not exist yet."""
    url = with_database(pg_server_url, f"tw_cli_{uuid.uuid4().hex[:12]}")
    yield url
    drop_database(pg_server_url, url)


def test_migrate_creates_a_missing_database_and_upgrades_it_to_head(fresh_database_url: str) -> None:
    runner = CliRunner()

    first = runner.invoke(main, ["migrate"], env={"SDR_DATABASE_URL": fresh_database_url})
    again = runner.invoke(main, ["migrate"], env={"SDR_DATABASE_URL": fresh_database_url})

    assert first.exit_code == 0, first.output
    assert "created the database" in first.output
    assert again.exit_code == 0, again.output
    assert "created the database" not in again.output
    head = ScriptDirectory.from_config(alembic_config(fresh_database_url)).get_current_head()
    engine = sa.create_engine(fresh_database_url, poolclass=sa.NullPool)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one() == head
        assert conn.execute(sa.text("SELECT to_regclass('public.organizations')")).scalar_one() is not None
    engine.dispose()


def test_sink_stores_and_logs_a_message_sent_with_smtplib(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "sink.log"
    with log.open("wb") as out:
        sink = subprocess.Popen(
            [SDR, "sink", "--port", str(port), "--data-dir", str(tmp_path / "data")],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=clean_env(),
            cwd=tmp_path,
        )
    try:
        wait_until(lambda: accepts(port) or sink.poll() is not None, "the sink to listen", timeout=60)
        assert sink.poll() is None, log.read_text()
        message = EmailMessage()
        message["From"] = "bot@acme.test"
        message["To"] = "lead@example.test"
        message["Subject"] = "Hello from Tidewater"
        message.set_content("Ünïcode body survives.")
        with smtplib.SMTP("127.0.0.1", port, timeout=5) as client:
            client.login("bot@acme.test", "any password works on the sink")
            refused = client.send_message(message)

        assert refused == {}
        stored = list((tmp_path / "data" / "mail" / "new").iterdir())
        assert len(stored) == 1  # the 250 reply comes after the file is written
        raw = stored[0].read_bytes()
        assert b"Subject: Hello from Tidewater" in raw
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        assert parsed.get_content().strip() == "Ünïcode body survives."
        wait_until(lambda: "mail_received" in log.read_text(), "the log line")
    finally:
        sink.send_signal(signal.SIGTERM)
        code = sink.wait(timeout=10)

    assert code == 0
    text = log.read_text()
    assert text.count("mail_received") == 1
    line = next(line for line in text.splitlines() if "mail_received" in line)
    assert "lead@example.test" in line
    assert "Hello from Tidewater" in line
    assert str(stored[0]) in line
    assert "sink_stopped" in text


def test_worker_runs_n_supervised_rq_workers_and_stops_them(redis_url: str, tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        fleet = subprocess.Popen(
            [SDR, "worker", "--queues", "email,sms", "--processes", "2"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=clean_env(SDR_REDIS_URL=redis_url),
            cwd=ROOT,
        )
    redis = Redis.from_url(redis_url)
    try:
        # RQ installs its SIGTERM handler after registering; "idle" is set once it is in place.
        wait_until(lambda: idle_workers(redis) == 2 or fleet.poll() is not None, "two idle workers", timeout=90)
        assert fleet.poll() is None, log.read_text()
        workers = Worker.all(connection=redis)
        assert all(sorted(w.queue_names()) == ["email", "sms"] for w in workers)
        assert len({w.pid for w in workers}) == 2
    finally:
        fleet.send_signal(signal.SIGTERM)
        code = fleet.wait(timeout=30)
    assert code == 0, log.read_text()
    assert Worker.all(connection=redis) == [], log.read_text()  # each worker deregistered on its warm shutdown
    redis.close()


def test_worker_rejects_an_unknown_queue() -> None:
    result = CliRunner().invoke(main, ["worker", "--queues", "email,carrier-pigeon"])
    assert result.exit_code == 2
    assert "carrier-pigeon" in result.output


@pytest.mark.parametrize(
    ("command", "target", "message", "code"),
    [
        # Processes exit 69 (EX_UNAVAILABLE) so that a supervisor reports them once and never restarts them.
        (["ticker"], "ticker", "the ticker is not available", EXIT_UNAVAILABLE),
        (["serve", "brand"], "brand", "the brand app is not available", EXIT_UNAVAILABLE),
        (["worker"], "worker", "the worker is not available", EXIT_UNAVAILABLE),
        (["create-operator", "ops@acme.test"], "create-operator", "creating operators is not available", 1),
    ],
)
def test_a_missing_entry_point_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, command: list[str], target: str, message: str, code: int
) -> None:
    monkeypatch.setitem(TARGETS, target, "services.not_built_yet:entry")

    result = CliRunner().invoke(main, command)

    assert result.exit_code == code
    assert message in result.output
    assert "services.not_built_yet:entry" in result.output


def test_every_entry_point_in_the_table_exists() -> None:
    # The table is the only place libs names the boxes; a typo there would only show at run time.
    from libs.cli import resolve

    missing = [name for name in TARGETS if resolve(name) is None]
    assert missing == []


def test_create_operator_dispatches_to_the_auth_box(database_url: str) -> None:
    runner = CliRunner()

    created = runner.invoke(main, ["create-operator", "ops@tidewater.dev"], env={"SDR_DATABASE_URL": database_url})
    again = runner.invoke(main, ["create-operator", "ops@tidewater.dev"], env={"SDR_DATABASE_URL": database_url})
    invalid = runner.invoke(main, ["create-operator", "not an address"], env={"SDR_DATABASE_URL": database_url})

    assert created.exit_code == 0, created.output
    assert "ops@tidewater.dev" in created.output
    assert again.exit_code == 0, again.output
    assert invalid.exit_code == 2
