"""``sdr dev`` end to end: the whole system as real processes, a killed service, and a clean Ctrl-C."""

from __future__ import annotations

import json
import re
import signal
import smtplib
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from libs.dev.state import hide_password
from tests.support.dev import SDR, DevSystem, alive, readyz, run_sdr_dev, wait_for

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
    with run_sdr_dev(tmp_path, database_url=urls.get("database_url"), redis_url=urls.get("redis_url")) as system:
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


@pytest.mark.e2e
@pytest.mark.timeout(600)
def test_other_commands_find_the_embedded_system_of_sdr_dev_and_fail_in_one_line_once_it_stopped(
    tmp_path: Path,
) -> None:
    started = time.monotonic()
    with run_sdr_dev(tmp_path) as system:  # no SDR_DATABASE_URL / SDR_REDIS_URL: embedded servers
        assert "SDR_DATABASE_URL" not in system.env
        assert "SDR_REDIS_URL" not in system.env
        state_file = system.data_dir / "dev.json"
        wait_for(lambda: state_file.exists(), "the state file", system, timeout=420)
        up_after = time.monotonic() - started
        state = json.loads(state_file.read_text())
        assert state["pid"] == system.process.pid
        assert stat.S_IMODE(state_file.stat().st_mode) == 0o600
        assert state["gateway_url"] == system.gateway
        assert readyz(system)[0] == 200  # written once the system is up
        wait_for(lambda: "mail secret" in system.output(), "the banner", system, timeout=10)
        assert state["inbound_email_secret"] in system.output()

        # A second terminal, same project, no URLs: it talks to the embedded servers and says so.
        status = system.sdr("status")
        using = f"sdr: using the system of sdr dev (pid {system.process.pid}): postgresql://"
        assert status.stderr.splitlines()[0].startswith(using)
        assert f"/tidewater?host={system.data_dir / 'postgres'}, redis://:***@127.0.0.1:" in status.stderr  # embedded
        assert "workers (" in status.stdout  # the worker sdr dev runs, seen through the embedded Redis
        assert "the ledger could not be read" not in status.stdout

        created = system.sdr("create-operator", "a@b.example")
        token = re.search(r"shown only now\): (\S+)", created.stdout)
        assert token is not None, created.stdout
        with httpx.Client(base_url=system.gateway, timeout=30) as client:
            accepted = client.post(
                "/api/auth/invites/accept", json={"token": token.group(1), "password": "correct horse battery"}
            )
            assert accepted.status_code in (200, 201), accepted.text
            login = client.post("/api/auth/login", json={"email": "a@b.example", "password": "correct horse battery"})
            assert login.status_code == 200, login.text
            me = client.get("/api/auth/me", headers={"Authorization": f"Bearer {login.json()['access_token']}"})
        assert me.status_code == 200, me.text
        assert me.json()["operator"] is True

        # The development inbound secret reaches the campaign service: a signed reply is accepted.
        with smtplib.SMTP("127.0.0.1", system.sink_port, timeout=10) as smtp:
            smtp.sendmail(
                "sam@acme.example",
                ["lead@example.test"],
                b"Message-ID: <not-ours@acme.example>\r\nFrom: sam@acme.example\r\nTo: lead@example.test\r\n"
                b"Subject: Hello\r\n\r\nHi there\r\n",
            )
        replied = system.sdr("reply", "--body", "Sounds good")
        assert " -> 202 " in replied.stdout, replied.stdout
        assert '"status": "ignored"' in replied.stdout  # signed right; no Tidewater message to match

        system.remember_tree()
        redis_url = state["redis_url"]
        system.process.send_signal(signal.SIGINT)
        assert system.process.wait(timeout=120) == 0, system.output()[-5000:]
        assert not state_file.exists()  # removed on a clean stop

        after = subprocess.run(
            [SDR, "status"], env=system.env, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False
        )
        assert after.returncode != 0, after.stdout
        assert len(after.stderr.strip().splitlines()) == 1, after.stderr
        assert after.stderr.startswith("sdr: ")
        assert "using the system of sdr dev" not in after.stderr
        assert "Traceback" not in after.stderr
        gone = subprocess.run(
            [SDR, "status"],
            env={**system.env, "SDR_REDIS_URL": redis_url},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert gone.returncode == 1
        assert gone.stderr.strip() == (
            f"sdr: cannot reach Redis at {hide_password(redis_url)} (connection refused); is `./tidewater up` running? "
            "set SDR_REDIS_URL to point at your Redis"
        )
    print(f"\nsdr dev on embedded servers was up after {up_after:.1f}s")
