"""Run ``sdr dev`` as a real process tree for end-to-end tests, and stop every process it started.

::

    with run_sdr_dev(tmp_path, database_url=database_url, redis_url=redis_url) as system:
        wait_for(lambda: readyz(system)[0] == 200, "/readyz to be green", system, timeout=120)
        httpx.get(f"{system.gateway}/healthz")

Without ``database_url`` / ``redis_url`` the system starts embedded servers under its data dir.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

from tests.support.servers import free_port

SDR = str(Path(sys.executable).with_name("sdr"))


@dataclass
class DevSystem:
    """A running ``sdr dev`` and what the test learned about it."""

    process: subprocess.Popen[bytes]
    log: Path
    data_dir: Path
    gateway: str
    sink_port: int
    env: dict[str, str] = field(default_factory=dict)
    seen: dict[int, psutil.Process] = field(default_factory=dict)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def remember_tree(self) -> list[psutil.Process]:
        """Record every process of the system: sdr dev's descendants and an embedded postmaster's."""
        roots = [psutil.Process(self.process.pid)]
        postmaster = self.data_dir / "postgres" / "postmaster.pid"
        if postmaster.exists():
            roots.append(psutil.Process(int(postmaster.read_text().split()[0])))
        for root in roots:
            for proc in [root, *root.children(recursive=True)]:
                self.seen.setdefault(proc.pid, proc)
        return list(self.seen.values())

    def child(self, *words: str) -> psutil.Process:
        """Return sdr dev's direct child whose command line contains ``words``."""
        for proc in psutil.Process(self.process.pid).children():
            cmdline = proc.cmdline()
            if all(word in cmdline for word in words):
                return proc
        raise AssertionError(f"no child runs {words}:\n{self.output()[-3000:]}")

    def sdr(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run another ``sdr`` command against this system (same environment); fail loudly on error."""
        done = subprocess.run(
            [SDR, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.log.parent,
            check=False,
        )
        assert done.returncode == 0, f"sdr {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
        return done


def alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def wait_for(condition: Callable[[], bool], what: str, system: DevSystem, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if system.process.poll() is not None:
            raise AssertionError(f"sdr dev exited ({system.process.returncode}) waiting for {what}:\n{system.output()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}:\n{system.output()[-5000:]}")
        time.sleep(0.1)


def readyz(system: DevSystem) -> tuple[int, dict[str, object]]:
    try:
        response = httpx.get(f"{system.gateway}/readyz", timeout=5)
    except httpx.HTTPError:
        return 0, {}
    return response.status_code, response.json()


@contextmanager
def run_sdr_dev(
    folder: Path,
    *,
    database_url: str | None = None,
    redis_url: str | None = None,
    extra_env: Mapping[str, str] | None = None,
    prepare: Callable[[Path], None] | None = None,
) -> Iterator[DevSystem]:
    """Start ``sdr dev`` on free ports with a fresh data dir; stop it and everything it started on exit.

    ``prepare`` is called with the data dir (not created yet) before ``sdr dev`` starts.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("SDR_")}
    ports = {name: free_port() for name in ("GATEWAY", "AUTH", "BRAND", "CAMPAIGN", "SMTP_SINK")}
    env.update({f"SDR_{name}_PORT": str(port) for name, port in ports.items()})
    # Not under tmp_path: as root, pgserver runs PostgreSQL as another user, and every pytest
    # session that starts on the machine makes pytest's base temp folder private again.
    data_dir = Path(tempfile.mkdtemp(prefix="tw-dev-")) / "data"
    env.update(
        {
            "SDR_DATA_DIR": str(data_dir),
            "SDR_DEV_WORKERS": "1",
            "SDR_DEV_READY_TIMEOUT": "240",
            "SDR_DEV_GRACE_SECONDS": "15",
        }
    )
    if database_url is not None:
        env["SDR_DATABASE_URL"] = database_url
    if redis_url is not None:
        env["SDR_REDIS_URL"] = redis_url
    env.update(extra_env or {})
    if prepare is not None:
        prepare(data_dir)
    log = folder / "dev.log"
    with log.open("wb") as out:
        process = subprocess.Popen([SDR, "dev"], stdout=out, stderr=subprocess.STDOUT, env=env, cwd=folder)
    system = DevSystem(process, log, data_dir, f"http://127.0.0.1:{ports['GATEWAY']}", ports["SMTP_SINK"], env)
    try:
        yield system
    finally:
        # Whatever happened above, leave nothing running.
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for proc in system.seen.values():
            if alive(proc):
                proc.kill()
        shutil.rmtree(data_dir.parent, ignore_errors=True)
