"""Keep the data dir of ``sdr dev`` private to the user who runs it.

The data dir holds the Redis append-only file, the embedded PostgreSQL, CSV imports, the
SMS/voice recorder and the mail sink: personal data and secrets. ``sdr dev`` sets the umask
of itself and every child to ``077`` (so whatever any of them creates is ``0700`` / ``0600``)
and, at start, takes group and other permissions away from what an earlier run (or an older
Tidewater) left there.

Running as root, pgserver runs PostgreSQL as its own system user, which must traverse the
data dir to reach ``postgres/``: the data dir then belongs to that user's group with mode
``0710`` (enter, not list), and everything else in it stays the root user's alone.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

PRIVATE_UMASK = 0o077
"""Nothing created under it is readable, writable or enterable by group or others."""
PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
TRAVERSE_ONLY_DIR = 0o710
"""The data dir when PostgreSQL runs as another user's group: that group may enter, not list."""
POSTGRES_FOLDER = "postgres"
"""The embedded PostgreSQL's data folder under the data dir: PostgreSQL keeps its own modes there."""


def private_umask() -> int:
    """Set this process's umask (inherited by every child it starts) to 077; return the previous one."""
    return os.umask(PRIVATE_UMASK)


def private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) if needed and make it ``0700``."""
    path.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    _chmod(path, PRIVATE_DIR)
    return path


def secure_tree(data_dir: Path) -> list[Path]:
    """Take group and other permissions away from everything under ``data_dir``; return what changed.

    Only the owner's bits are kept (files are ``0600`` or less, folders ``0700``). Symbolic
    links are not followed and sockets are left alone (the folder holding them protects them).
    PostgreSQL's data folder is only made ``0700`` itself: the server keeps its own files' modes.
    """
    changed: list[Path] = []
    root = private_dir(data_dir)
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        if here == root / POSTGRES_FOLDER:
            dirs[:] = []
            continue
        for name in dirs:
            if _restrict(here / name):
                changed.append(here / name)
        for name in files:
            if _restrict(here / name):
                changed.append(here / name)
    return changed


def share_traversal(data_dir: Path, gid: int | None) -> None:
    """Let group ``gid`` (PostgreSQL's, when it runs as another user) enter ``data_dir``; ``None``: ``0700``.

    pgserver opens every folder above its data folder to everyone each time it starts the
    server; this closes the data dir again and keeps ``postgres/`` itself ``0700``.
    """
    if gid is None:
        _chmod(data_dir, PRIVATE_DIR)
    else:
        with contextlib.suppress(PermissionError):
            os.chown(data_dir, -1, gid)
        _chmod(data_dir, TRAVERSE_ONLY_DIR)
    pgdata = data_dir / POSTGRES_FOLDER
    if pgdata.is_dir() and not pgdata.is_symlink():
        _restrict(pgdata)


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (a ``0600`` temporary file renamed over it)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, PRIVATE_FILE)
    try:
        os.fchmod(fd, PRIVATE_FILE)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def _restrict(path: Path) -> bool:
    """Clear every bit of ``path`` but its owner's (not following links); return whether it changed."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return False
    if stat.S_ISLNK(mode) or stat.S_ISSOCK(mode):
        return False
    current = stat.S_IMODE(mode)
    wanted = current & PRIVATE_DIR
    if wanted == current:
        return False
    _chmod(path, wanted)
    return True


def _chmod(path: Path, mode: int) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.chmod(path, mode)
