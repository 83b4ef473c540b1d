"""Where a running ``sdr dev`` is: the state file it keeps under the data dir, read by every other command.

``sdr dev`` writes ``<data dir>/dev.json`` once the system is up (atomically, mode 0600) and
removes it on a clean stop. Every other ``sdr`` command run in the same project (same
``SDR_DATA_DIR``, default ``.data``) with no ``SDR_DATABASE_URL`` / ``SDR_REDIS_URL`` of its
own reads it and talks to that system; a file left by a ``sdr dev`` that is gone (its pid is
dead or its data-dir lock is free) is ignored and reported.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import tempfile
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

STATE_FILE = "dev.json"
"""The state file of a running ``sdr dev``, relative to the data dir."""
LOCK_FILE = "dev.lock"
"""Held (``flock``) by a running ``sdr dev`` for its whole life."""
SECRET_FILE = "inbound-email-secret"  # noqa: S105 - a file name
"""The development inbound-mail secret, generated once, relative to the data dir."""
REDIS_PASSWORD_FILE = "redis-password"  # noqa: S105 - a file name
"""The embedded Redis's password, generated once per data dir, relative to the data dir."""


@dataclass(frozen=True, slots=True)
class DevState:
    """What a running ``sdr dev`` tells the other commands."""

    pid: int
    data_dir: str
    database_url: str
    redis_url: str
    gateway_url: str
    inbound_email_secret: str | None = None
    """The development secret of ``/hooks/email/inbound``; ``None`` when the user set their own."""
    started_at: float = 0.0

    def describe(self) -> str:
        """Say which system this is in one line, without any password."""
        return f"{hide_password(self.database_url)}, {hide_password(self.redis_url)}"


@dataclass(frozen=True, slots=True)
class Lookup:
    """What reading the state file found: a running system, nothing, or a stale file (with why)."""

    state: DevState | None
    stale: str | None = None


def hide_password(url: str) -> str:
    """Return ``url`` with any password replaced by ``***`` (database and Redis URLs alike)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return url.split("@", 1)[-1] if "@" in url else url
    text = parsed.render_as_string(hide_password=True)
    # Show the scheme the user gave, not the driver SQLAlchemy needs, and a socket folder as a path.
    return unquote(text.replace("postgresql+psycopg://", "postgresql://", 1))


def state_path(data_dir: Path) -> Path:
    """Return where ``sdr dev`` keeps its state file under ``data_dir``."""
    return data_dir / STATE_FILE


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists (one we may not signal counts as alive)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def lock_held(data_dir: Path) -> bool:
    """Whether some process holds the data dir's ``sdr dev`` lock right now."""
    path = data_dir / LOCK_FILE
    if not path.exists():
        return False
    with path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


def write_state(data_dir: Path, state: DevState) -> Path:
    """Write ``state`` to the data dir atomically (a temporary file renamed over it), readable by us only."""
    data_dir.mkdir(parents=True, exist_ok=True)
    target = state_path(data_dir)
    fd, temporary = tempfile.mkstemp(prefix=".dev-", suffix=".json", dir=data_dir)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(asdict(state), handle, indent=2)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    return target


def remove_state(data_dir: Path, pid: int) -> None:
    """Remove the state file if it is the one process ``pid`` wrote."""
    path = state_path(data_dir)
    with contextlib.suppress(FileNotFoundError, ValueError, OSError):
        if json.loads(path.read_text(encoding="utf-8")).get("pid") == pid:
            path.unlink()


def read_state(data_dir: Path) -> Lookup:
    """Read the state file under ``data_dir``: the running system, nothing, or a stale file and why."""
    path = state_path(data_dir)
    try:
        raw: Any = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Lookup(None)
    except (OSError, ValueError) as exc:
        return Lookup(None, stale=f"{path}: not readable ({type(exc).__name__})")
    try:
        state = DevState(
            pid=int(raw["pid"]),
            data_dir=str(raw["data_dir"]),
            database_url=str(raw["database_url"]),
            redis_url=str(raw["redis_url"]),
            gateway_url=str(raw["gateway_url"]),
            inbound_email_secret=raw.get("inbound_email_secret"),
            started_at=float(raw.get("started_at") or 0.0),
        )
    except (KeyError, TypeError, ValueError, AttributeError):
        return Lookup(None, stale=f"{path}: it does not describe a system")
    if not pid_alive(state.pid):
        return Lookup(None, stale=f"{path}: the sdr dev that wrote it (pid {state.pid}) is no longer running")
    if not lock_held(data_dir):
        # The pid was reused by another process: the sdr dev that wrote the file is gone.
        return Lookup(None, stale=f"{path}: the sdr dev that wrote it (pid {state.pid}) no longer holds {LOCK_FILE}")
    return Lookup(state)


def dev_inbound_secret(data_dir: Path) -> str:
    """Return the development inbound-mail secret kept in the data dir, creating it (mode 0600) the first time."""
    return kept_secret(data_dir / SECRET_FILE, lambda: "dev-inbound-" + secrets.token_urlsafe(24))


def dev_redis_password(data_dir: Path) -> str:
    """Return the embedded Redis's password kept in the data dir, creating it (mode 0600) the first time.

    URL-safe characters only, so it goes into a ``redis://`` URL and a Redis config file as it is.
    """
    return kept_secret(data_dir / REDIS_PASSWORD_FILE, lambda: secrets.token_urlsafe(32))


def kept_secret(path: Path, generate: Callable[[], str]) -> str:
    """Return the secret in ``path``, writing ``generate()`` there (mode 0600) when it is missing or empty.

    An existing file is made 0600 if it was not; concurrent first calls agree on one value.
    """
    with contextlib.suppress(FileNotFoundError):
        existing = path.read_text(encoding="utf-8").strip()
        if existing:
            os.chmod(path, 0o600)
            return existing
        path.unlink()  # empty: make a new one
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = generate()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        return path.read_text(encoding="utf-8").strip()  # another process created it meanwhile
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write(secret + "\n")
    return secret


@dataclass(frozen=True, slots=True)
class Applied:
    """What :func:`use_running_system` did: the system it chose (if any) and the one line to say."""

    state: DevState | None
    message: str | None


def use_running_system(
    data_dir: Path, *, explicit: Mapping[str, str], environ: MutableMapping[str, str] | None = None
) -> Applied:
    """Point this process (and its children) at the ``sdr dev`` running on ``data_dir``.

    ``explicit`` holds the settings the user gave (``database_url``, ``redis_url``,
    ``inbound_email_secret``, by field name): those always win. Each missing one is set in
    ``environ`` (``os.environ`` by default) from the state file, so every settings class of
    this process and every child it starts reads it.
    """
    environ = os.environ if environ is None else environ
    if "database_url" in explicit and "redis_url" in explicit:
        return Applied(None, None)
    lookup = read_state(data_dir.expanduser().resolve())
    if lookup.state is None:
        return Applied(None, f"sdr: ignoring {lookup.stale}" if lookup.stale else None)
    state = lookup.state
    database = explicit.get("database_url", state.database_url)
    redis = explicit.get("redis_url", state.redis_url)
    environ["SDR_DATABASE_URL"] = database
    environ["SDR_REDIS_URL"] = redis
    if state.inbound_email_secret and "inbound_email_secret" not in explicit:
        environ["SDR_INBOUND_EMAIL_SECRET"] = state.inbound_email_secret
    return Applied(
        state,
        f"sdr: using the system of sdr dev (pid {state.pid}): {hide_password(database)}, {hide_password(redis)}",
    )
