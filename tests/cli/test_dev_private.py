"""``sdr dev`` keeps its data dir to the user who runs it, and its embedded Redis behind a password."""

from __future__ import annotations

import json
import os
import pwd
import signal
import smtplib
import socket
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import psutil
import pytest
import sqlalchemy as sa
from redis import Redis

from libs.dev.embedded import REDIS_CONFIG_FILE, RunningPostgres, redis_child, redis_url, wait_for_redis
from libs.dev.private import PRIVATE_UMASK, secure_tree, share_traversal
from libs.dev.state import REDIS_PASSWORD_FILE, SECRET_FILE, dev_redis_password
from libs.settings import normalize_database_url
from tests.support.dev import run_sdr_dev, wait_for
from tests.support.servers import free_port


def redis_says(port: int, command: bytes) -> bytes:
    """Send one inline command to the Redis on ``port`` without logging in; return its first reply line."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(command + b"\r\n")
        reply = b""
        while not reply.endswith(b"\r\n"):
            chunk = sock.recv(512)
            if not chunk:
                break
            reply += chunk
    return reply.strip()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def opened_entries(data_dir: Path) -> list[tuple[str, str]]:
    """Every file or folder under ``data_dir`` that its group or others may use (sockets and links aside)."""
    found = []
    for folder, dirs, files in os.walk(data_dir):
        for name in [*dirs, *files]:
            path = Path(folder) / name
            kind = path.lstat().st_mode
            if stat.S_ISSOCK(kind) or stat.S_ISLNK(kind):
                continue
            if stat.S_IMODE(kind) & 0o077:
                found.append((str(path.relative_to(data_dir)), oct(stat.S_IMODE(kind))))
    return found


def leave_it_open(data_dir: Path) -> None:
    """What an earlier run under a permissive umask left: folders 0755, files 0644."""
    for name in ("mail/new", "mail/cur", "mail/tmp", "outbox", "lead-imports"):
        (data_dir / name).mkdir(parents=True)
    for path, text in {
        "mail/new/1.old": "Subject: an old mail\r\n\r\nto grace@hopper.example",
        "outbox/sms.jsonl": '{"to": "+15555550100"}\n',
        "lead-imports/leads.csv": "email\ngrace@hopper.example\n",
        SECRET_FILE: "dev-inbound-left-open\n",
    }.items():
        (data_dir / path).write_text(text)
        (data_dir / path).chmod(0o644)
    for opened in (data_dir, *[p for p in data_dir.rglob("*") if p.is_dir()]):
        opened.chmod(0o755)


@pytest.mark.e2e
@pytest.mark.timeout(600)
def test_sdr_dev_keeps_the_data_dir_private_and_redis_behind_a_password_no_log_shows(tmp_path: Path) -> None:
    with run_sdr_dev(tmp_path, prepare=leave_it_open) as system:  # embedded PostgreSQL and Redis
        data_dir = system.data_dir
        state_file = data_dir / "dev.json"
        wait_for(state_file.exists, "the state file", system, timeout=420)
        state = json.loads(state_file.read_text())
        password = (data_dir / REDIS_PASSWORD_FILE).read_text().strip()
        url = urlsplit(state["redis_url"])
        assert url.password == password
        assert len(password) >= 32
        assert url.port is not None
        port = url.port

        # Redis refuses whoever does not log in, and a wrong password.
        assert redis_says(port, b"PING").startswith(b"-NOAUTH")
        assert redis_says(port, b"KEYS *").startswith(b"-NOAUTH")
        assert redis_says(port, b"AUTH not-the-password").startswith(b"-WRONGPASS")
        # The URL sdr dev hands out works (the workers use it: sdr status sees one below).
        client = Redis.from_url(state["redis_url"])
        try:
            assert client.ping() is True
        finally:
            client.close()

        # A second process finds the system through the state file, and shows the URL masked.
        status = system.sdr("status")
        assert "workers (" in status.stdout
        assert "the ledger could not be read" not in status.stdout
        assert f"redis://:***@127.0.0.1:{port}/0" in status.stderr
        assert password not in status.stdout + status.stderr

        # What the system writes now is private too: a mail in the sink.
        with smtplib.SMTP("127.0.0.1", system.sink_port, timeout=10) as smtp:
            smtp.sendmail("bot@acme.test", ["lead@example.test"], b"Subject: private\r\n\r\nhello")
        [new] = [p for p in (data_dir / "mail" / "new").iterdir() if p.name != "1.old"]
        assert mode(new) == 0o600

        # Nothing under the data dir is open to group or others: neither what was left open
        # before this start nor what the servers wrote since.
        assert mode(state_file) == 0o600
        assert mode(data_dir / REDIS_PASSWORD_FILE) == 0o600
        assert mode(data_dir / "redis" / REDIS_CONFIG_FILE) == 0o600
        assert mode(data_dir / "mail" / "new" / "1.old") == 0o600
        assert mode(data_dir / "outbox" / "sms.jsonl") == 0o600
        assert mode(data_dir / SECRET_FILE) == 0o600
        assert mode(data_dir / "mail") == 0o700
        assert mode(data_dir / "redis") == 0o700
        assert mode(data_dir / "postgres") == 0o700
        assert opened_entries(data_dir) == []
        if os.geteuid() == 0:
            # PostgreSQL runs as pgserver's own user: its group may enter the data dir, not list it.
            assert mode(data_dir) == 0o710
            assert data_dir.stat().st_gid == pwd.getpwnam("pgserver").pw_gid
        else:
            assert mode(data_dir) == 0o700

        # The embedded PostgreSQL listens on no TCP address, only on a socket in its 0700 folder.
        assert f"host={data_dir / 'postgres'}" in state["database_url"]
        engine = sa.create_engine(normalize_database_url(state["database_url"]), poolclass=sa.NullPool)
        try:
            with engine.connect() as conn:
                assert conn.execute(sa.text("SHOW listen_addresses")).scalar() == ""
        finally:
            engine.dispose()

        # The password is on no command line (ps shows those to every user) ...
        tree = system.remember_tree()
        lines = {proc.pid: " ".join(proc.cmdline()) for proc in tree if proc.is_running()}
        assert any("redis-server" in line for line in lines.values()), lines
        assert [line for line in lines.values() if password in line] == []

        system.process.send_signal(signal.SIGINT)
        assert system.process.wait(timeout=120) == 0, system.output()[-5000:]
        # ... and in no line sdr dev or any child printed; the banner shows the URL masked.
        output = system.output()
        assert f"redis        redis://:***@127.0.0.1:{port}/0  (embedded)" in output
        assert password not in output
        assert "made 10 entries of" in output  # what was left open was closed, and said so


@pytest.fixture
def redis_folder(tmp_path: Path) -> Iterator[Path]:
    previous = os.umask(PRIVATE_UMASK)
    try:
        yield tmp_path / "data"
    finally:
        os.umask(previous)


def start_redis(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    spec = redis_child(data_dir / "redis", port=port, password=dev_redis_password(data_dir))
    process = subprocess.Popen(list(spec.argv), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return process


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.mark.timeout(60)
def test_the_embedded_redis_keeps_its_password_and_data_across_restarts(redis_folder: Path) -> None:
    data_dir = redis_folder
    port = free_port()
    first = start_redis(data_dir, port)
    try:
        password = (data_dir / REDIS_PASSWORD_FILE).read_text().strip()
        url = redis_url(port, password)
        wait_for_redis(url, timeout=15)
        assert redis_says(port, b"PING").startswith(b"-NOAUTH")
        client = Redis.from_url(url)
        client.set("kept", "yes")
        client.close()
        assert password not in " ".join(psutil.Process(first.pid).cmdline())  # what ps shows
    finally:
        stop(first)

    again = start_redis(data_dir, port)
    try:
        assert (data_dir / REDIS_PASSWORD_FILE).read_text().strip() == password  # the same one
        wait_for_redis(url, timeout=15)
        client = Redis.from_url(url)
        assert client.get("kept") == b"yes"  # the append-only file of the first run, read back
        client.close()
        assert redis_says(port, b"GET kept").startswith(b"-NOAUTH")
    finally:
        stop(again)
    for path in (data_dir / REDIS_PASSWORD_FILE, data_dir / "redis" / REDIS_CONFIG_FILE):
        assert mode(path) == 0o600
    assert opened_entries(data_dir) == []


def test_each_data_dir_gets_its_own_password(tmp_path: Path) -> None:
    one, other = dev_redis_password(tmp_path / "one"), dev_redis_password(tmp_path / "other")
    assert one != other
    assert dev_redis_password(tmp_path / "one") == one
    assert mode(tmp_path / "one" / REDIS_PASSWORD_FILE) == 0o600


def test_a_password_file_left_open_is_closed_and_kept(tmp_path: Path) -> None:
    tmp_path.joinpath(REDIS_PASSWORD_FILE).write_text("kept-password\n")
    tmp_path.joinpath(REDIS_PASSWORD_FILE).chmod(0o644)
    assert dev_redis_password(tmp_path) == "kept-password"
    assert mode(tmp_path / REDIS_PASSWORD_FILE) == 0o600


def test_secure_tree_closes_what_was_left_open_and_leaves_links_alone(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    leave_it_open(data_dir)
    outside = tmp_path / "outside.txt"
    outside.write_text("not ours to change")
    outside.chmod(0o644)
    (data_dir / "link").symlink_to(outside)
    (data_dir / "postgres").mkdir(mode=0o755)
    (data_dir / "postgres" / "postgresql.conf").write_text("# PostgreSQL keeps the modes of its own files\n")
    (data_dir / "postgres" / "postgresql.conf").chmod(0o640)

    changed = secure_tree(data_dir)

    assert opened_entries(data_dir) == [("postgres/postgresql.conf", "0o640")]
    assert mode(data_dir) == 0o700
    assert mode(data_dir / "postgres") == 0o700
    assert mode(outside) == 0o644
    assert len(changed) == 11  # 6 folders and 4 files left open, and postgres/ itself
    assert secure_tree(data_dir) == []

    share_traversal(data_dir, os.getgid())
    assert mode(data_dir) == 0o710
    share_traversal(data_dir, None)
    assert mode(data_dir) == 0o700


def test_a_postgresql_socket_outside_its_data_folder_is_not_private(tmp_path: Path) -> None:
    pgdata = tmp_path / "postgres"
    inside = RunningPostgres(pgdata=pgdata, pid=1, url="", socket_dir=pgdata)
    outside = RunningPostgres(pgdata=pgdata, pid=1, url="", socket_dir=tmp_path / "runtime" / "abc")
    assert inside.private_socket
    assert not outside.private_socket
    assert not RunningPostgres(pgdata=pgdata, pid=1, url="", socket_dir=None).private_socket
