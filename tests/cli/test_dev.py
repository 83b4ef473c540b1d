"""``sdr dev`` end to end: the whole system as real processes, a killed service, and a clean Ctrl-C."""

from __future__ import annotations

import os
import shutil
import signal
import smtplib
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
import pytest

from tests.support.servers import free_port

SDR = str(Path(sys.executable).with_name("sdr"))
UPSTREAMS = {"auth", "brand", "campaign"}


@dataclass
class DevSystem:
    """A running ``sdr dev`` and what the test learned about it."""

    process: subprocess.Popen[bytes]
    log: Path
    data_dir: Path
    gateway: str
    sink_port: int
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


@pytest.fixture(params=["embedded", "given"])
def dev_system(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DevSystem]:
    """``sdr dev`` on free ports with a fresh data dir, on embedded servers or on the test's own."""
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
    if request.param == "given":
        env["SDR_DATABASE_URL"] = request.getfixturevalue("database_url")
        env["SDR_REDIS_URL"] = request.getfixturevalue("redis_url")
    log = tmp_path / "dev.log"
    with log.open("wb") as out:
        process = subprocess.Popen([SDR, "dev"], stdout=out, stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
    system = DevSystem(process, log, data_dir, f"http://127.0.0.1:{ports['GATEWAY']}", ports["SMTP_SINK"])
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


@pytest.mark.e2e
@pytest.mark.timeout(420)
def test_sdr_dev_runs_everything_survives_a_dead_service_and_leaves_no_process(dev_system: DevSystem) -> None:
    system = dev_system
    wait_for(lambda: readyz(system)[0] == 200, "/readyz to be green", system, timeout=300)
    status, body = readyz(system)
    assert status == 200
    assert body["checks"] == {"auth": "ok", "brand": "ok", "campaign": "ok", "database": "ok", "redis": "ok"}
    wait_for(lambda: "Tidewater is up." in system.output(), "the banner", system, timeout=10)
    banner = system.output()
    assert f"gateway      {system.gateway}" in banner
    assert f"{system.gateway}/api/docs" in banner
    assert str(system.data_dir / "mail" / "new") in banner
    system.remember_tree()
    assert alive(system.child("worker"))
    # Mail sent to the sink lands in the folder the banner names.
    with smtplib.SMTP("127.0.0.1", system.sink_port, timeout=10) as smtp:
        smtp.sendmail("bot@acme.test", ["lead@example.test"], b"Subject: dev sink\r\n\r\nhello")
    [stored] = (system.data_dir / "mail" / "new").iterdir()
    assert b"Subject: dev sink" in stored.read_bytes()

    # Kill the campaign service outright: its routes answer 503 problems at once, the rest still work.
    campaign = system.child("serve", "campaign")
    campaign.send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    with httpx.Client(base_url=system.gateway, timeout=5) as client:
        unsubscribe = client.get("/u/some-token")
        elapsed = time.monotonic() - killed_at
        jwks = client.get("/api/auth/jwks.json")
        health = client.get("/healthz")
    assert unsubscribe.status_code == 503, unsubscribe.text
    assert unsubscribe.headers["content-type"].startswith("application/problem+json")
    assert unsubscribe.json()["status"] == 503
    assert elapsed < 1.0
    assert jwks.status_code == 200
    assert jwks.json()["keys"]
    assert health.status_code == 200

    # The supervisor says so loudly and brings the service back.
    wait_for(lambda: f"campaign (pid {campaign.pid}) killed by SIGKILL" in system.output(), "the report", system, 10)
    wait_for(lambda: readyz(system)[0] == 200, "the campaign service to be back", system, timeout=180)
    assert "restarting campaign" in system.output()

    tree = system.remember_tree()
    assert len(tree) >= 9  # sdr dev, 4 apps, a worker, the ticker, the sink, Redis or PostgreSQL
    system.process.send_signal(signal.SIGINT)
    code = system.process.wait(timeout=120)

    assert code == 0, system.output()[-5000:]
    survivors = [p for p in tree if alive(p)]
    assert survivors == [], [(p.pid, p.cmdline()) for p in survivors]
    output = system.output()
    assert "SIGINT received: stopping every process" in output
    assert "every process stopped" in output
    assert "SIGKILL" not in output.split("SIGINT received", 1)[1]  # every child stopped within its grace
