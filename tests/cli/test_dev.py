"""``sdr dev`` end to end: the whole system as real processes, a killed service, and a clean Ctrl-C."""

from __future__ import annotations

import signal
import smtplib
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.dev import DevSystem, alive, readyz, run_sdr_dev, wait_for

UPSTREAMS = {"auth", "brand", "campaign"}


@pytest.fixture(params=["embedded", "given"])
def dev_system(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DevSystem]:
    """``sdr dev`` on free ports with a fresh data dir, on embedded servers or on the test's own."""
    urls: dict[str, str] = {}
    if request.param == "given":
        urls = {
            "database_url": request.getfixturevalue("database_url"),
            "redis_url": request.getfixturevalue("redis_url"),
        }
    with run_sdr_dev(tmp_path, **urls) as system:
        yield system


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
