"""A small process supervisor: children in their own process groups, loud restarts, no orphans.

Each child runs in a new session (so its own process group): Ctrl-C in the terminal reaches
only the supervisor, which then stops the children in order, and a child's own children
(uvicorn workers, for example) are signalled with it through its group. A child that exits
while the supervisor is not stopping is reported with its exit code and started again after
a backoff (1 s, 2 s, 4 s, ... capped at 30 s, reset once a run lasted 30 s); after
``max_failures`` quick failures in a row the supervisor gives up and stops everything.
Stopping sends SIGTERM to every group of a tier, waits up to the grace period, then SIGKILLs
what is left, later tiers first (applications before the servers they use).

Children started with ``SDR_SUPERVISOR_PID`` in their environment ask Linux to send them
SIGTERM should the supervisor die without cleaning up (see :func:`die_with_supervisor`).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import IO, Any

EXIT_UNAVAILABLE = 69
"""Exit code (sysexits' EX_UNAVAILABLE) of a child whose entry point is not installed: never restarted."""

SUPERVISOR_PID_ENV = "SDR_SUPERVISOR_PID"
"""Set in every child's environment: the pid of the process that supervises it."""

BACKOFF_FIRST = 1.0
BACKOFF_MAX = 30.0
STABLE_AFTER = 30.0
_PR_SET_PDEATHSIG = 1


def die_with_supervisor() -> None:
    """Ask the kernel to SIGTERM this process when its supervisor dies (Linux; elsewhere a no-op)."""
    expected = os.environ.get(SUPERVISOR_PID_ENV)
    if not expected or not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != int(expected):
        # The supervisor died between our fork and the prctl call: nobody will ever stop us.
        sys.exit(1)


def describe_exit(code: int) -> str:
    """Say how a process ended, naming the signal for negative codes."""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """How to start one supervised child; ``tier`` orders shutdown (highest stops first)."""

    name: str
    argv: Sequence[str]
    env: Mapping[str, str] | None = None
    tier: int = 1
    cwd: str | None = None


@dataclass
class Child:
    """A supervised child and its restart bookkeeping."""

    spec: ChildSpec
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    failures: int = 0
    restart_at: float | None = None
    reader: threading.Thread | None = None
    history: list[int] = field(default_factory=list)
    retired: bool = False

    @property
    def pid(self) -> int | None:
        """The running process's pid, if any."""
        return self.process.pid if self.process is not None and self.process.returncode is None else None

    @property
    def alive(self) -> bool:
        """Whether the child runs now or will be started again."""
        return not self.retired and (self.pid is not None or self.restart_at is not None)


class Supervisor:
    """Start, watch, restart and stop a set of child processes."""

    def __init__(
        self,
        *,
        grace: float = 10.0,
        max_failures: int = 5,
        backoff_first: float = BACKOFF_FIRST,
        output: IO[str] | None = None,
        prefix_output: bool = True,
    ) -> None:
        self.grace = grace
        self.max_failures = max_failures
        self.backoff_first = backoff_first
        self.output = output or sys.stdout
        self.prefix_output = prefix_output
        self.children: dict[str, Child] = {}
        self.failed: str | None = None
        self._stopping = False
        self._hurry = False
        self._received: list[int] = []
        self._write_lock = threading.Lock()
        self._previous_handlers: dict[int, Any] = {}
        self._width = 8
        # Signal handlers only set flags and write a byte here: no locks in a handler.
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)

    # -- signals -------------------------------------------------------------------------

    def install_signal_handlers(self) -> None:
        """Turn SIGINT, SIGTERM and SIGHUP into a clean stop, and SIGCHLD into a wake-up."""
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            self._previous_handlers[signum] = signal.signal(signum, self._on_stop_signal)
        self._previous_handlers[signal.SIGCHLD] = signal.signal(signal.SIGCHLD, self._on_child_signal)

    def restore_signal_handlers(self) -> None:
        """Put back the handlers that were there before :meth:`install_signal_handlers`."""
        for signum, handler in self._previous_handlers.items():
            signal.signal(signum, handler)
        self._previous_handlers.clear()

    def _on_stop_signal(self, signum: int, _frame: FrameType | None) -> None:
        if self._stopping:
            self._hurry = True  # a second Ctrl-C: skip the rest of the grace period
        self._received.append(signum)
        self.request_stop()

    def _on_child_signal(self, _signum: int, _frame: FrameType | None) -> None:
        self._wake()

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._wake_w, b"!")

    def request_stop(self) -> None:
        """Ask the supervisor to stop (safe from signal handlers and other threads)."""
        self._stopping = True
        self._wake()

    @property
    def stop_requested(self) -> bool:
        """Whether a stop was asked for (signal, fatal failure or :meth:`request_stop`)."""
        return self._stopping

    def wait(self, timeout: float) -> None:
        """Sleep until a signal, a child's exit or a stop request, at most ``timeout`` seconds."""
        with contextlib.suppress(InterruptedError):
            select.select([self._wake_r], [], [], max(0.0, timeout))
        with contextlib.suppress(BlockingIOError, OSError):
            while os.read(self._wake_r, 512):
                pass
        while self._received:
            self.say(f"{signal.Signals(self._received.pop(0)).name} received: stopping every process")

    # -- output --------------------------------------------------------------------------

    def say(self, line: str, *, name: str = "sdr") -> None:
        """Write one line to the shared output, prefixed with who said it."""
        text = f"{name:<{self._width}} | {line}\n" if self.prefix_output else f"{line}\n"
        with self._write_lock, contextlib.suppress(OSError, ValueError):
            self.output.write(text)
            self.output.flush()

    def _pump(self, name: str, stream: IO[bytes]) -> None:
        with contextlib.suppress(OSError, ValueError):
            for raw in iter(stream.readline, b""):
                self.say(raw.decode("utf-8", "replace").rstrip("\n"), name=name)
        stream.close()

    # -- lifecycle -----------------------------------------------------------------------

    def add(self, spec: ChildSpec, *, start: bool = True) -> Child:
        """Register ``spec`` and (by default) start it now."""
        if spec.name in self.children:
            raise ValueError(f"duplicate child name {spec.name!r}")
        child = Child(spec)
        self.children[spec.name] = child
        self._width = max(self._width, len(spec.name))
        if start:
            self._spawn(child)
        return child

    def _spawn(self, child: Child) -> None:
        env = dict(os.environ if child.spec.env is None else child.spec.env)
        env[SUPERVISOR_PID_ENV] = str(os.getpid())
        env.setdefault("PYTHONUNBUFFERED", "1")
        child.process = subprocess.Popen(  # noqa: S603 - argv built by us, never a shell
            list(child.spec.argv),
            env=env,
            cwd=child.spec.cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if self.prefix_output else None,
            stderr=subprocess.STDOUT if self.prefix_output else None,
            start_new_session=True,
        )
        child.started_at = time.monotonic()
        child.restart_at = None
        if self.prefix_output and child.process.stdout is not None:
            child.reader = threading.Thread(
                target=self._pump, args=(child.spec.name, child.process.stdout), daemon=True
            )
            child.reader.start()

    def step(self, timeout: float = 0.5) -> None:
        """Wait up to ``timeout`` for something to happen, then reap dead children and restart due ones."""
        self.wait(self._next_timeout(timeout))
        if self.stop_requested:
            return
        now = time.monotonic()
        for child in self.children.values():
            process = child.process
            if process is not None and not child.retired and child.restart_at is None and process.poll() is not None:
                self._on_exit(child, process.returncode, now)
            if child.restart_at is not None and now >= child.restart_at and not self.stop_requested:
                self.say(f"restarting {child.spec.name} (attempt {child.failures})")
                self._spawn(child)
        if self.children and not self.stop_requested and not any(c.alive for c in self.children.values()):
            self.say("!!! no process is left to supervise: stopping")
            self.failed = self.failed or "everything"
            self.request_stop()

    def _next_timeout(self, timeout: float) -> float:
        due = [c.restart_at for c in self.children.values() if c.restart_at is not None]
        if not due:
            return timeout
        return max(0.0, min(timeout, min(due) - time.monotonic()))

    def _on_exit(self, child: Child, code: int, now: float) -> None:
        # Whatever the dead child left in its group (uvicorn workers holding its port) goes too.
        self._signal_group(child, signal.SIGKILL)
        child.history.append(code)
        if code == EXIT_UNAVAILABLE:
            self.say(f"!!! {child.spec.name} is not available in this installation (exit {code}): not restarting it")
            child.retired = True
            return
        ran = now - child.started_at
        child.failures = 1 if ran >= STABLE_AFTER else child.failures + 1
        if child.failures > self.max_failures:
            self.say(
                f"!!! {child.spec.name} (pid {child.process.pid if child.process else '?'}) {describe_exit(code)};"
                f" it failed {child.failures} times in a row: giving up and stopping everything"
            )
            self.failed = child.spec.name
            self.request_stop()
            return
        delay = min(BACKOFF_MAX, self.backoff_first * 2 ** (child.failures - 1))
        self.say(
            f"!!! {child.spec.name} (pid {child.process.pid if child.process else '?'}) {describe_exit(code)}"
            f" after {ran:.1f}s; restarting in {delay:g}s"
        )
        child.restart_at = now + delay

    def run(self, *, until: Callable[[], bool] | None = None, tick: float = 0.5) -> None:
        """Supervise until a stop is requested (or ``until()`` turns true)."""
        while not self.stop_requested and not (until is not None and until()):
            self.step(tick)

    def stop(self) -> None:
        """Stop every child, highest tier first: SIGTERM to its group, SIGKILL after the grace period."""
        self._stopping = True
        self.wait(0)
        for tier in sorted({c.spec.tier for c in self.children.values()}, reverse=True):
            self._stop_tier([c for c in self.children.values() if c.spec.tier == tier])
        for child in self.children.values():
            if child.reader is not None:
                child.reader.join(timeout=2)

    def _stop_tier(self, children: Sequence[Child]) -> None:
        running = [c for c in children if c.process is not None and c.process.returncode is None]
        for child in running:
            self._signal_group(child, signal.SIGTERM)
        deadline = time.monotonic() + self.grace
        for child in running:
            assert child.process is not None
            while child.process.poll() is None and time.monotonic() < deadline and not self._hurry:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    child.process.wait(timeout=0.1)
        for child in running:
            assert child.process is not None
            if child.process.poll() is None:
                self.say(f"{child.spec.name} (pid {child.process.pid}) ignored SIGTERM: sending SIGKILL")
            # Kill the whole group even when the leader is gone: its own children may linger.
            self._signal_group(child, signal.SIGKILL)
            child.process.wait()
            _wait_until_group_gone(child.process.pid)

    @staticmethod
    def _signal_group(child: Child, signum: int) -> None:
        assert child.process is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            # The child called setsid(), so its pid is also its process group id.
            os.killpg(child.process.pid, signum)

    def __enter__(self) -> Supervisor:
        self.install_signal_handlers()
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.stop()
        finally:
            self.restore_signal_handlers()
            os.close(self._wake_r)
            os.close(self._wake_w)


def _wait_until_group_gone(pgid: int, timeout: float = 2.0) -> None:
    """Wait until no process of group ``pgid`` is left (a zombie waiting for init still counts)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return
        time.sleep(0.01)


def supervised_exec_argv() -> list[str]:
    """Return the prefix that runs any program so that it dies with its supervisor."""
    return [sys.executable, "-m", "libs.dev.supervisor"]


def exec_supervised(argv: Sequence[str]) -> None:
    """Replace this process with ``argv`` after arming the parent-death signal (it survives exec)."""
    die_with_supervisor()
    os.execv(argv[0], list(argv))  # noqa: S606 - argv built by the supervisor, never a shell


if __name__ == "__main__":
    # ``python -m libs.dev.supervisor PROGRAM ARGS...``: run a non-Python child (redis-server)
    # so that it, too, dies with its supervisor.
    exec_supervised(sys.argv[1:])
