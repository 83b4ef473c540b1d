"""The state file of a running ``sdr dev``: how every other command finds that system, and when it does not."""

from __future__ import annotations

import fcntl
import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from libs.dev.state import (
    LOCK_FILE,
    SECRET_FILE,
    DevState,
    dev_inbound_secret,
    read_state,
    remove_state,
    state_path,
    use_running_system,
    write_state,
)
from tests.support.servers import free_port

SDR = str(Path(sys.executable).with_name("sdr"))


@contextmanager
def running_dev(data_dir: Path) -> Iterator[None]:
    """Hold the data dir's lock the way a running ``sdr dev`` does (this test process plays it)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with (data_dir / LOCK_FILE).open("a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield


def dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def a_state(data_dir: Path, *, pid: int | None = None, database_url: str = "", redis_url: str = "") -> DevState:
    return DevState(
        pid=os.getpid() if pid is None else pid,
        data_dir=str(data_dir),
        database_url=database_url or "postgresql+psycopg://postgres:pg-pass@127.0.0.1:5999/tidewater",
        redis_url=redis_url or "redis://127.0.0.1:6999/0",
        gateway_url="http://127.0.0.1:8999",
        inbound_email_secret="dev-inbound-abc",
    )


def sdr(*args: str, data_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run a real ``sdr`` process in a project of its own: no SDR_ variable but the data dir and ``env``."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SDR_")}
    return subprocess.run(
        [SDR, *args],
        env={**clean, "SDR_DATA_DIR": str(data_dir), **env},
        cwd=data_dir.parent,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_state_file_is_written_atomically_for_its_owner_only_and_read_back(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    state = a_state(data_dir)
    with running_dev(data_dir):
        path = write_state(data_dir, state)
        lookup = read_state(data_dir)

    assert path == state_path(data_dir) == data_dir / "dev.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text())["redis_url"] == "redis://127.0.0.1:6999/0"
    assert lookup.state == state
    assert lookup.stale is None
    assert [p.name for p in data_dir.iterdir() if p.name.startswith(".dev-")] == []  # no temporary left


def test_a_file_whose_pid_is_dead_is_stale_and_says_so(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    pid = dead_pid()
    with running_dev(data_dir):
        write_state(data_dir, a_state(data_dir, pid=pid))
        lookup = read_state(data_dir)

    assert lookup.state is None
    assert lookup.stale is not None
    assert f"pid {pid}" in lookup.stale
    assert "no longer running" in lookup.stale


def test_a_live_pid_without_the_lock_is_stale_too(tmp_path: Path) -> None:
    # sdr dev was killed and its pid reused: nobody holds the data dir's lock any more.
    data_dir = tmp_path / "data"
    write_state(data_dir, a_state(data_dir, pid=os.getpid()))

    lookup = read_state(data_dir)

    assert lookup.state is None
    assert lookup.stale is not None
    assert LOCK_FILE in lookup.stale


def test_a_broken_file_is_reported_not_used(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    state_path(data_dir).write_text("{not json")
    assert read_state(data_dir).state is None
    assert "not readable" in (read_state(data_dir).stale or "")
    state_path(data_dir).write_text('{"pid": 1}')
    assert "does not describe a system" in (read_state(data_dir).stale or "")


def test_remove_state_removes_only_the_file_of_that_pid(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    write_state(data_dir, a_state(data_dir, pid=os.getpid()))
    remove_state(data_dir, os.getpid() + 1)
    assert state_path(data_dir).exists()
    remove_state(data_dir, os.getpid())
    assert not state_path(data_dir).exists()
    remove_state(data_dir, os.getpid())  # already gone: nothing to do


def test_missing_urls_come_from_the_state_file_and_explicit_ones_win(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with running_dev(data_dir):
        write_state(data_dir, a_state(data_dir))
        nothing_given: dict[str, str] = {}
        applied = use_running_system(data_dir, explicit={}, environ=nothing_given)
        database_given: dict[str, str] = {}
        mine = "postgresql+psycopg://me@db.internal:5432/mine"
        partly = use_running_system(data_dir, explicit={"database_url": mine}, environ=database_given)
        both: dict[str, str] = {}
        neither = use_running_system(
            data_dir, explicit={"database_url": mine, "redis_url": "redis://r:6379/1"}, environ=both
        )

    assert nothing_given == {
        "SDR_DATABASE_URL": "postgresql+psycopg://postgres:pg-pass@127.0.0.1:5999/tidewater",
        "SDR_REDIS_URL": "redis://127.0.0.1:6999/0",
        "SDR_INBOUND_EMAIL_SECRET": "dev-inbound-abc",
    }
    assert applied.message == (
        f"sdr: using the system of sdr dev (pid {os.getpid()}): "
        "postgresql://postgres:***@127.0.0.1:5999/tidewater, redis://127.0.0.1:6999/0"
    )
    assert database_given["SDR_DATABASE_URL"] == mine
    assert database_given["SDR_REDIS_URL"] == "redis://127.0.0.1:6999/0"
    assert partly.message is not None
    assert "me@db.internal:5432/mine" in partly.message
    assert both == {}
    assert neither.message is None


def test_a_stale_file_changes_nothing_and_is_reported(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    write_state(data_dir, a_state(data_dir, pid=dead_pid()))
    environ: dict[str, str] = {}

    applied = use_running_system(data_dir, explicit={}, environ=environ)

    assert environ == {}
    assert applied.state is None
    assert applied.message is not None
    assert applied.message.startswith("sdr: ignoring ")


def test_the_development_inbound_secret_is_made_once_and_kept_private(tmp_path: Path) -> None:
    first = dev_inbound_secret(tmp_path)
    again = dev_inbound_secret(tmp_path)
    assert first == again
    assert len(first) > 30
    assert stat.S_IMODE((tmp_path / SECRET_FILE).stat().st_mode) == 0o600


@pytest.fixture
def state_with_password(database_url: str, redis_url: str, tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A data dir whose running sdr dev (this test, holding the lock) runs on the test's servers."""
    # The test server trusts local logins, so a password in the URL is carried and never checked.
    url = make_url(database_url).set(password="pg-secret-pass").render_as_string(hide_password=False)
    data_dir = tmp_path / "data"
    with running_dev(data_dir):
        write_state(data_dir, a_state(data_dir, database_url=url, redis_url=redis_url))
        yield data_dir, url


def test_status_and_create_operator_use_the_running_system_and_never_print_its_password(
    state_with_password: tuple[Path, str], database_url: str
) -> None:
    data_dir, url = state_with_password

    status = sdr("status", data_dir=data_dir)
    created = sdr("create-operator", "ops@acme.example", data_dir=data_dir)

    assert status.returncode == 0, status.stderr
    first = status.stderr.splitlines()[0]
    database = f"postgresql://postgres:***@127.0.0.1:{make_url(url).port}/{make_url(url).database}"
    assert first.startswith(f"sdr: using the system of sdr dev (pid {os.getpid()}): {database}, redis://")
    assert "workers: none" in status.stdout
    assert "the ledger could not be read" not in status.stdout
    assert created.returncode == 0, created.stderr
    assert "Created operator ops@acme.example" in created.stdout
    for output in (status.stdout, status.stderr, created.stdout, created.stderr):
        assert "pg-secret-pass" not in output
    engine = sa.create_engine(database_url, poolclass=sa.NullPool)
    with engine.connect() as conn:
        operator = conn.execute(sa.text("SELECT operator FROM users WHERE email = 'ops@acme.example'")).scalar_one()
    engine.dispose()
    assert operator is True


def test_an_explicit_url_wins_over_the_running_system(state_with_password: tuple[Path, str]) -> None:
    data_dir, _ = state_with_password
    dead = f"redis://127.0.0.1:{free_port()}/0"

    status = sdr("status", data_dir=data_dir, SDR_REDIS_URL=dead)

    assert status.returncode == 1
    assert status.stderr.splitlines()[-1].startswith(f"sdr: cannot reach Redis at {dead} (connection refused)")
    assert "Traceback" not in status.stderr


def test_a_stale_file_is_reported_and_the_command_goes_on_without_it(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    write_state(data_dir, a_state(data_dir, pid=dead_pid()))
    nowhere = f"postgresql://postgres@127.0.0.1:{free_port()}/tidewater"

    status = sdr("status", data_dir=data_dir, SDR_DATABASE_URL=nowhere)

    assert status.returncode == 1
    lines = status.stderr.splitlines()
    assert lines[0].startswith(f"sdr: ignoring {state_path(data_dir.resolve())}: the sdr dev that wrote it (pid ")
    assert lines[-1].startswith("sdr: cannot reach ")
    assert "Traceback" not in status.stderr
