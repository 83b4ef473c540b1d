"""The dev supervisor: loud restarts with backoff, giving up, and stopping whole process groups."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from typing import IO, cast

import psutil
import pytest

from libs.dev.supervisor import EXIT_UNAVAILABLE, SUPERVISOR_PID_ENV, ChildSpec, Supervisor, describe_exit
from tests.conftest import ROOT


class Lines(io.TextIOBase):
    """A text stream that remembers the lines written to it and lets a test wait for one."""

    def __init__(self) -> None:
        self.text = ""
        self._changed = threading.Condition()

    def write(self, s: str) -> int:
        with self._changed:
            self.text += s
            self._changed.notify_all()
        return len(s)

    def wait_for(self, needle: str, timeout: float = 15.0) -> str:
        with self._changed:
            if not self._changed.wait_for(lambda: needle in self.text, timeout=timeout):
                raise AssertionError(f"{needle!r} never appeared in:\n{self.text}")
            return self.text


def python(code: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(code)]


def gone(process: psutil.Process) -> bool:
    try:
        return not process.is_running() or process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.fixture
def lines() -> Lines:
    return Lines()


@pytest.fixture
def supervisor(lines: Lines) -> Iterator[Supervisor]:
    # A TextIOBase is a text stream, though not the IO[str] protocol class mypy names.
    sup = Supervisor(grace=0.5, max_failures=2, backoff_first=0.05, output=cast(IO[str], lines))
    with sup:
        yield sup


def test_a_dying_child_is_reported_with_its_exit_code_and_restarted(supervisor: Supervisor, lines: Lines) -> None:
    supervisor.add(ChildSpec(name="flaky", argv=python("print('up', flush=True); raise SystemExit(3)")))

    supervisor.run(until=lambda: len(supervisor.children["flaky"].history) >= 3)

    text = lines.text
    assert text.count("flaky    | up") >= 2  # it was started again after dying
    assert "flaky (pid" in text
    assert "exited with code 3" in text
    assert "restarting in 0.05s" in text
    assert "giving up and stopping everything" in text
    assert supervisor.failed == "flaky"
    assert supervisor.stop_requested


def test_stop_kills_the_whole_group_even_when_sigterm_is_ignored(supervisor: Supervisor, lines: Lines) -> None:
    stubborn = """
        import signal, subprocess, sys, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        grandchild = subprocess.Popen([sys.executable, "-c",
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"])
        print("grandchild", grandchild.pid, flush=True)
        time.sleep(60)
    """
    child = supervisor.add(ChildSpec(name="stubborn", argv=python(stubborn)))
    lines.wait_for("grandchild ")
    grandchild_pid = int(lines.text.split("grandchild ")[1].split()[0])
    tree = [psutil.Process(child.process.pid), psutil.Process(grandchild_pid)]  # type: ignore[union-attr]

    started = time.monotonic()
    supervisor.stop()

    assert time.monotonic() - started < 5
    assert "ignored SIGTERM: sending SIGKILL" in lines.text
    assert all(gone(p) for p in tree)


def test_children_get_their_own_process_group(supervisor: Supervisor, lines: Lines) -> None:
    child = supervisor.add(ChildSpec(name="quiet", argv=python("import time; print('ok', flush=True); time.sleep(60)")))
    lines.wait_for("quiet    | ok")
    pid = child.process.pid  # type: ignore[union-attr]

    # A terminal's Ctrl-C goes to the foreground group: ours, never the children's.
    assert os.getpgid(pid) == pid != os.getpgid(0)
    supervisor.stop()
    assert describe_exit(child.process.returncode) == "killed by SIGTERM"  # type: ignore[union-attr]


def test_a_child_dies_with_its_supervisor_even_when_the_supervisor_is_killed() -> None:
    # A supervisor killed with SIGKILL cannot clean up; the kernel's parent-death signal does.
    script = """
        import sys, time
        from libs.dev.supervisor import ChildSpec, Supervisor
        child = [sys.executable, "-c",
                 "from libs.dev.supervisor import die_with_supervisor; import time; "
                 "die_with_supervisor(); print('armed', flush=True); time.sleep(60)"]
        with Supervisor(prefix_output=True) as sup:
            c = sup.add(ChildSpec(name="orphan", argv=child))
            print("child", c.process.pid, flush=True)
            sup.run()
    """
    outer = subprocess.Popen(python(script), cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert outer.stdout is not None
        seen: list[str] = []
        while not (any(line.startswith("child ") for line in seen) and any("armed" in line for line in seen)):
            line = outer.stdout.readline()
            assert line, f"the supervisor ended early: {seen}"
            seen.append(line)
        child_pid = int(next(line for line in seen if line.startswith("child ")).split()[1])
        child = psutil.Process(child_pid)
        assert child.environ().get(SUPERVISOR_PID_ENV) == str(outer.pid)

        outer.send_signal(signal.SIGKILL)
        outer.wait(timeout=10)

        child.wait(timeout=10)
        assert gone(child)
    finally:
        if outer.poll() is None:
            outer.kill()
            outer.wait()


def test_a_child_without_an_entry_point_is_reported_once_and_never_restarted(
    supervisor: Supervisor, lines: Lines
) -> None:
    steady = supervisor.add(ChildSpec(name="steady", argv=python("import time; time.sleep(60)")))
    supervisor.add(ChildSpec(name="missing", argv=python(f"raise SystemExit({EXIT_UNAVAILABLE})")))

    supervisor.run(until=lambda: supervisor.children["missing"].retired)
    supervisor.step(0.2)

    assert "missing is not available in this installation (exit 69): not restarting it" in lines.text
    assert supervisor.children["missing"].history == [EXIT_UNAVAILABLE]
    assert steady.pid is not None
    assert not supervisor.stop_requested


def test_the_supervisor_stops_when_nothing_is_left_to_supervise(supervisor: Supervisor, lines: Lines) -> None:
    supervisor.add(ChildSpec(name="missing", argv=python(f"raise SystemExit({EXIT_UNAVAILABLE})")))

    supervisor.run()  # returns instead of idling forever

    assert "no process is left to supervise" in lines.text
    assert supervisor.failed == "everything"
