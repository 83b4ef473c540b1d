"""The ``sdr`` command's edge: each known user error is one line ``sdr: <reason>; <what to do>``, exit non-zero."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result
from sqlalchemy.engine import make_url

from libs.cli import main
from libs.dev.edge import translate
from tests.support.servers import create_database, drop_database, free_port, with_database

SDR = str(Path(sys.executable).with_name("sdr"))


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A data dir of its own, so that no running ``sdr dev`` of the working tree is found."""
    return tmp_path / "data"


def sdr(project: Path, *args: str, **env: str) -> Result:
    values: dict[str, str | None] = {"SDR_DATA_DIR": str(project), "SDR_INBOUND_EMAIL_SECRET": None}
    values.update(env)
    return CliRunner().invoke(main, list(args), env=values)


def one_line(result: Result, starts: str) -> str:
    """Assert ``result`` failed with exactly one ``sdr:`` line on stderr starting with ``starts``; return it."""
    assert result.exit_code != 0, result.output
    assert isinstance(result.exception, SystemExit), result.exception  # click's exit, not an escaped exception
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("sdr: "), lines
    assert lines[0].startswith(starts), lines[0]
    assert "; " in lines[0]  # the reason, then what to do
    return lines[0]


@pytest.fixture
def dead_port() -> int:
    return free_port()


@pytest.fixture
def empty_database(pg_server_url: str) -> Iterator[str]:
    """A database that exists but was never migrated."""
    url = create_database(pg_server_url, prefix="tw_unmigrated")
    yield url
    drop_database(pg_server_url, url)


def test_redis_refusing_connections(project: Path, database_url: str, dead_port: int) -> None:
    url = f"redis://127.0.0.1:{dead_port}/0"
    result = sdr(project, "status", SDR_DATABASE_URL=database_url, SDR_REDIS_URL=url)
    line = one_line(result, f"sdr: cannot reach Redis at {url} (connection refused); ")
    assert result.exit_code == 1
    assert "SDR_REDIS_URL" in line
    assert "./tidewater up" in line


def test_postgresql_refusing_connections(project: Path, redis_url: str, dead_port: int) -> None:
    url = f"postgresql://postgres:hunter2-secret@127.0.0.1:{dead_port}/tidewater"
    result = sdr(project, "create-operator", "ops@acme.example", SDR_DATABASE_URL=url, SDR_REDIS_URL=redis_url)
    line = one_line(result, f"sdr: cannot reach PostgreSQL at postgresql://postgres:***@127.0.0.1:{dead_port}/")
    assert "connection refused" in line
    assert "hunter2-secret" not in result.output


def test_status_fails_when_the_ledger_cannot_be_read(project: Path, redis_url: str, dead_port: int) -> None:
    url = f"postgresql://postgres@127.0.0.1:{dead_port}/tidewater"
    result = sdr(project, "status", SDR_DATABASE_URL=url, SDR_REDIS_URL=redis_url)
    one_line(result, "sdr: cannot reach PostgreSQL at ")
    assert "workers: none" not in result.stdout  # no half-empty table that looks like an idle system


def test_a_missing_database(project: Path, pg_server_url: str, redis_url: str) -> None:
    url = with_database(pg_server_url, f"tw_missing_{uuid.uuid4().hex[:8]}")
    result = sdr(project, "status", SDR_DATABASE_URL=url, SDR_REDIS_URL=redis_url)
    line = one_line(result, "sdr: database ")
    assert "does not exist" in line
    assert "sdr migrate" in line


def test_a_database_that_was_never_migrated(project: Path, empty_database: str, redis_url: str) -> None:
    result = sdr(project, "status", SDR_DATABASE_URL=empty_database, SDR_REDIS_URL=redis_url)
    line = one_line(result, "sdr: the database ")
    assert "is not migrated" in line
    assert line.endswith("run `sdr migrate`")


def test_a_login_postgresql_refuses(project: Path, pg_server_url: str, redis_url: str) -> None:
    url = make_url(pg_server_url).set(username="nobody_here").render_as_string(hide_password=False)
    result = sdr(project, "status", SDR_DATABASE_URL=url, SDR_REDIS_URL=redis_url)
    line = one_line(result, "sdr: PostgreSQL at ")
    assert "refused the login" in line


@pytest.mark.parametrize(
    ("variable", "value", "starts"),
    [
        ("SDR_DATABASE_URL", "mysql://root@127.0.0.1/tidewater", "sdr: SDR_DATABASE_URL must be a PostgreSQL URL"),
        ("SDR_DATABASE_URL", "not a url at all", "sdr: SDR_DATABASE_URL is not a valid URL"),
        ("SDR_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432", "sdr: SDR_DATABASE_URL names no database"),
        ("SDR_REDIS_URL", "http://127.0.0.1:6379/0", "sdr: SDR_REDIS_URL must start with redis://"),
        ("SDR_REDIS_URL", "redis://127.0.0.1:6379/notanumber", "sdr: SDR_REDIS_URL is not a valid Redis URL"),
        ("SDR_GATEWAY_PORT", "eighty", "sdr: invalid settings (SDR_GATEWAY_PORT: "),
    ],
)
def test_a_bad_url_or_setting(
    project: Path, database_url: str, redis_url: str, variable: str, value: str, starts: str
) -> None:
    env = {"SDR_DATABASE_URL": database_url, "SDR_REDIS_URL": redis_url, variable: value}
    result = sdr(project, "status", **env)
    one_line(result, starts)
    assert result.exit_code == 2


def test_a_bad_email_for_create_operator_is_named_before_any_connection(project: Path, dead_port: int) -> None:
    # The database is down too: the typo is still what the user hears about.
    url = f"postgresql://postgres@127.0.0.1:{dead_port}/tidewater"
    result = sdr(project, "create-operator", "not an address", SDR_DATABASE_URL=url, SDR_REDIS_URL="redis://x:1/0")
    line = one_line(result, "sdr: invalid EMAIL 'not an address'")
    assert result.exit_code == 2
    assert "ops@example.com" in line


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def test_serve_on_a_port_in_use(project: Path, busy_port: int, database_url: str, redis_url: str) -> None:
    result = sdr(
        project, "serve", "gateway", "--port", str(busy_port), SDR_DATABASE_URL=database_url, SDR_REDIS_URL=redis_url
    )
    line = one_line(result, f"sdr: 127.0.0.1:{busy_port} is already in use; ")
    assert "--port" in line


def test_sdr_dev_on_a_port_in_use_says_which_and_starts_nothing(tmp_path: Path, busy_port: int) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SDR_")}
    env.update({"SDR_DATA_DIR": str(tmp_path / "data"), "SDR_GATEWAY_PORT": str(busy_port)})
    done = subprocess.run([SDR, "dev"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False)

    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [done.stderr.strip()], done.stderr
    assert done.stderr.startswith(f"sdr: port already in use: gateway 127.0.0.1:{busy_port}; ")
    assert "Traceback" not in done.stdout + done.stderr
    assert not (tmp_path / "data" / "postgres").exists()  # nothing was started


def test_a_known_family_is_recognised_through_an_explicit_cause() -> None:
    from redis.exceptions import ConnectionError as RedisConnectionError

    try:
        try:
            raise RedisConnectionError("Error 111 connecting to 127.0.0.1:1. Connection refused.")
        except RedisConnectionError as inner:
            raise RuntimeError("the worker could not start") from inner
    except RuntimeError as outer:
        error = translate(outer)
    assert error is not None
    assert "connection refused" in error.format_message()


def test_a_bug_is_not_translated_and_keeps_its_traceback(database_url: str) -> None:
    assert translate(ValueError("a genuine bug")) is None
    assert translate(KeyError("x")) is None
    engine = sa.create_engine(database_url, poolclass=sa.NullPool)
    caught: list[BaseException] = []
    for statement in ("SELEC 1", "SELECT 1 / 0", "SET LOCAL statement_timeout = 1; SELECT pg_sleep(1)"):
        with engine.connect() as conn:
            try:
                conn.exec_driver_sql(statement)
            except sa.exc.DBAPIError as exc:
                caught.append(exc)
    engine.dispose()
    # A syntax error, a division by zero, a statement timeout (an OperationalError) are not the user's setup.
    assert [type(exc).__name__ for exc in caught] == ["ProgrammingError", "DataError", "OperationalError"]
    assert [translate(exc) for exc in caught] == [None, None, None]
