"""A real IMAP server for tests: Debian's dovecot with its own configuration in a temporary folder.

Start one as a context manager; it listens on ``127.0.0.1`` on a free port, runs as the current
user (no root needed), keeps its mail as maildirs under the folder and stops when the block ends::

    from tests.support.imap import DovecotServer

    with DovecotServer(users={"ada@acme.test": "s3cret"}) as imap:
        imap.append("ada@acme.test", b"Subject: hi\\r\\n\\r\\nhello")
        client = imap.client("ada@acme.test")

Users log in with plain passwords (``disable_plaintext_auth = no``, no TLS). With
``introspection_url`` (an OAuth 2.0 token introspection endpoint, RFC 7662, e.g. the loopback
provider's ``/introspect``) they may also log in with XOAUTH2 or OAUTHBEARER: dovecot's
``oauth2`` passdb asks that endpoint whether the bearer token is active and whose it is. Mail is delivered
by IMAP ``APPEND`` as a second client would. :meth:`DovecotServer.recreate_folder` deletes and
creates a folder again, which gives it a new UIDVALIDITY.

:func:`require_dovecot` skips a test when ``/usr/sbin/dovecot`` is absent, but only outside CI:
with ``CI`` set the test fails instead (``.ci/run`` installs ``dovecot-imapd``).
"""

from __future__ import annotations

import getpass
import grp
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

import pytest
from imapclient import IMAPClient

from tests.support.servers import free_port

DOVECOT = "/usr/sbin/dovecot"


def require_dovecot() -> None:
    """Skip the calling test when dovecot is not installed, unless ``CI`` is set (then it must run)."""
    if not Path(DOVECOT).exists() and not os.environ.get("CI"):
        pytest.skip("dovecot is not installed (apt-get install -y dovecot-imapd); CI runs this test")


class DovecotServer:
    """One dovecot process with a passwd-file of ``users`` (login -> password) and maildirs in a tmp folder."""

    def __init__(self, users: dict[str, str], *, idle: bool = True, introspection_url: str | None = None) -> None:
        self.users = dict(users)
        self.idle = idle
        self.introspection_url = introspection_url
        self.host = "127.0.0.1"
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="tidewater-dovecot-"))
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> DovecotServer:
        self._write_config()
        self._process = subprocess.Popen(
            [DOVECOT, "-F", "-c", str(self.folder / "dovecot.conf")],
            stdout=subprocess.DEVNULL,
            stderr=(self.folder / "stderr.log").open("wb"),
        )
        self._wait_listening()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop dovecot and remove its folder."""
        if self._process is not None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=10)
            self._process = None
        shutil.rmtree(self.folder, ignore_errors=True)

    def _write_config(self) -> None:
        user, group = getpass.getuser(), grp.getgrgid(os.getgid()).gr_name
        uid, gid = os.getuid(), os.getgid()
        login_user = user
        base = self.folder
        (base / "run").mkdir()
        (base / "mail").mkdir()
        if uid == 0:
            # Dovecot refuses root for its login processes and for mail access: as root, the
            # login processes run as nobody and the mail belongs to nobody.
            nobody = pwd.getpwnam("nobody")
            login_user, uid, gid = nobody.pw_name, nobody.pw_uid, nobody.pw_gid
            os.chmod(base, 0o755)
            os.chown(base / "mail", uid, gid)
        lines = [
            f"{login}:{{PLAIN}}{password}:{uid}:{gid}::{base / 'mail'}::" for login, password in self.users.items()
        ]
        (base / "passwd").write_text("\n".join(lines) + "\n")
        capability = "" if self.idle else "imap_capability = IMAP4rev1 LITERAL+ UIDPLUS UNSELECT\n"
        mechanisms, oauth2 = "plain login", ""
        if self.introspection_url:
            mechanisms += " xoauth2 oauthbearer"
            (base / "oauth2.conf.ext").write_text(
                f"introspection_mode = post\nintrospection_url = {self.introspection_url}\n"
                "force_introspection = yes\nusername_attribute = username\n"
                "active_attribute = active\nactive_value = true\n"
            )
            conf = base / "oauth2.conf.ext"
            oauth2 = f"passdb {{\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n  args = {conf}\n}}\n"
        (base / "dovecot.conf").write_text(
            f"""
base_dir = {base / "run"}
state_dir = {base / "run"}
log_path = {base / "dovecot.log"}
protocols = imap
listen = {self.host}
ssl = no
disable_plaintext_auth = no
auth_mechanisms = {mechanisms}
auth_failure_delay = 0
default_internal_user = {user}
default_internal_group = {group}
default_login_user = {login_user}
mail_uid = {uid}
mail_gid = {gid}
first_valid_uid = {uid}
last_valid_uid = {uid}
first_valid_gid = 0
mail_location = maildir:{base / "mail"}/%u
mail_privileged_group =
{capability}
service imap-login {{
  inet_listener imap {{
    address = {self.host}
    port = {self.port}
  }}
  inet_listener imaps {{
    port = 0
  }}
  chroot =
}}
service anvil {{
  chroot =
}}
service stats {{
  chroot =
}}
{oauth2}passdb {{
  driver = passwd-file
  mechanisms = plain login
  args = scheme=PLAIN {base / "passwd"}
}}
userdb {{
  driver = passwd-file
  args = {base / "passwd"}
}}
protocol imap {{
  imap_idle_notify_interval = 1 secs
}}
"""
        )

    def _wait_listening(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise RuntimeError(f"dovecot exited: {self.log()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=1) as sock:
                    if sock.recv(64).startswith(b"* OK"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"dovecot did not listen on {self.port}: {self.log()}")

    def log(self) -> str:
        """What dovecot wrote to its logs so far."""
        parts = [p.read_text(errors="replace") for p in (self.folder / "stderr.log", self.folder / "dovecot.log")]
        return "\n".join(p for p in parts if p)

    def client(self, login: str, *, folder: str | None = None) -> IMAPClient:
        """A logged-in IMAP client for ``login`` (``folder`` selected when given)."""
        client = IMAPClient(self.host, port=self.port, ssl=False, timeout=10)
        client.login(login, self.users[login])
        if folder is not None:
            client.select_folder(folder)
        return client

    def append(self, login: str, *messages: bytes, folder: str = "INBOX") -> None:
        """Deliver ``messages`` into ``login``'s ``folder`` by IMAP APPEND."""
        self.append_all(login, messages, folder=folder)

    def append_all(self, login: str, messages: Iterable[bytes], *, folder: str = "INBOX") -> None:
        """Deliver every message of ``messages`` over one connection."""
        client = self.client(login)
        try:
            for raw in messages:
                client.append(folder, raw)
        finally:
            client.logout()

    def recreate_folder(self, login: str, folder: str = "INBOX.Replies") -> int:
        """Delete ``folder`` and create it again (a new UIDVALIDITY); return the new UIDVALIDITY."""
        client = self.client(login)
        try:
            if client.folder_exists(folder):
                client.delete_folder(folder)
            client.create_folder(folder)
            return int(client.folder_status(folder, [b"UIDVALIDITY"])[b"UIDVALIDITY"])
        finally:
            client.logout()
