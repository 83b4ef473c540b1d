"""End to end through real processes: ticker and worker processes, loopback SMTP/Twilio, kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from redis import Redis
from rq.registry import StartedJobRegistry

from libs.crypto import SecretBox
from libs.db.session import make_engine
from libs.settings import CommonSettings
from tests.conftest import ROOT
from tests.services.worker.conftest import messages
from tests.services.worker.factories import World, create_world
from tests.support.providers import ProviderServer, hang
from tests.support.smtp import SmtpServer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]
TWILIO = ("AC" + "3" * 32, "twilio-token")
WORKER = "from services.worker.main import run_worker; run_worker(['email', 'sms', 'voicemail'])"
TICKER = "from services.worker.main import run_ticker; run_ticker()"


def noon_offset() -> float:
    now = datetime.now(UTC)
    local = now.astimezone(ZoneInfo("America/New_York"))
    noon = local.replace(hour=12, minute=0, second=0, microsecond=0)
    if noon <= local:
        noon += timedelta(days=1)
    return (noon.astimezone(UTC) - now).total_seconds()


class Fleet:
    """Worker and ticker processes this test started (and alone stops)."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, code: str, name: str) -> subprocess.Popen[bytes]:
        log = (self.logs / f"{name}-{len(self.procs)}.log").open("wb")
        proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=self.env, stdout=log, stderr=log)
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


@pytest.fixture
def fleet(database_url: str, redis_url: str, tmp_path: Path, providers: ProviderServer) -> Iterator[Fleet]:
    env = {
        **os.environ,
        "SDR_ENV": "test",
        "SDR_DATABASE_URL": database_url,
        "SDR_REDIS_URL": redis_url,
        "SDR_DATA_DIR": str(tmp_path),
        "SDR_TWILIO_BASE_URL": providers.url,
        "SDR_JOB_TIMEOUT": "10",
        "SDR_SMTP_TIMEOUT": "1",
        "SDR_TWILIO_TIMEOUT": "2",
        "SDR_OPENAI_TIMEOUT": "1",
        "SDR_OPENAI_MAX_RETRIES": "0",
        "SDR_REPAIR_AFTER_SECONDS": "2",
        "SDR_RETRY_BASE_SECONDS": "0",
        "SDR_WORKER_ALIVE_TTL": "2",
        "SDR_TICKER_INTERVAL": "0.2",
        "SDR_DOMAIN_PACING_PER_MINUTE": "100000",
        "SDR_EMAIL_HOURLY_CAP": "100000",
        "SDR_CLOCK_OFFSET_SECONDS": str(noon_offset()),
        "SDR_LOG_LEVEL": "WARNING",
    }
    f = Fleet(env, tmp_path)
    yield f
    f.stop()


def wait_until(predicate: Callable[[], bool], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.25)


def launch(database_url: str, smtp: SmtpServer, leads: int, channels: tuple[str, ...]) -> tuple[sa.Engine, World]:
    engine = make_engine(database_url)
    box = SecretBox.from_settings(CommonSettings())
    world = create_world(engine, channels=channels, leads=leads, smtp=(smtp.host, smtp.port), twilio=TWILIO, box=box)
    return engine, world


def test_campaign_of_three_channels_over_50_leads_with_two_tickers(
    fleet: Fleet, database_url: str, smtp: SmtpServer, providers: ProviderServer
) -> None:
    engine, world = launch(database_url, smtp, 50, ("email", "sms", "voicemail"))
    for _ in range(2):
        fleet.start(TICKER, "ticker")
        fleet.start(WORKER, "worker")
    providers.wait_for("calls", 50, timeout=180)
    wait_until(lambda: sum(r.status == "sent" for r in messages(engine, world)) == 150)
    rows = messages(engine, world)
    assert len(rows) == 150
    assert len(smtp.messages) == 50
    assert len({m.rcpt_tos[0] for m in smtp.messages}) == 50
    assert providers.count("messages") == 50
    assert len({r.form["To"] for r in providers.received("messages")}) == 50
    assert providers.count("calls") == 50
    assert len({r.form["To"] for r in providers.received("calls")}) == 50
    for lead_id in world.lead_ids:
        mine = sorted((r for r in rows if r.lead_id == lead_id), key=lambda r: r.sent_at)
        assert [r.channel for r in mine] == ["email", "sms", "voicemail"]
    engine.dispose()


def test_kill_9_of_a_worker_mid_send_loses_nothing_and_sends_nothing_twice(
    fleet: Fleet, database_url: str, smtp: SmtpServer, providers: ProviderServer
) -> None:
    engine, world = launch(database_url, smtp, 50, ("sms",))
    providers.script("messages", *([hang(0)] * 9), hang(60))  # the 10th request never answers
    fleet.start(TICKER, "ticker")
    victim = fleet.start(WORKER, "worker")
    providers.wait_for("messages", 10, timeout=120)
    os.kill(victim.pid, signal.SIGKILL)  # mid-send: Twilio has the 10th request
    victim.wait(10)
    fleet.start(WORKER, "worker")
    wait_until(lambda: sum(r.status in ("sent", "unknown") for r in messages(engine, world)) == 50)
    rows = messages(engine, world)
    assert sorted(r.status for r in rows).count("sent") == 49
    assert [r.status for r in rows].count("unknown") == 1  # the one in flight: never resent
    assert providers.count("messages") == 50
    assert len({r.form["To"] for r in providers.received("messages")}) == 50
    engine.dispose()


def test_sigterm_mid_send_finishes_the_job_then_exits(
    fleet: Fleet, database_url: str, redis_url: str, smtp: SmtpServer, providers: ProviderServer
) -> None:
    """RELIABILITY R4: a warm shutdown lets the send in flight finish and be recorded, then exits."""
    engine, world = launch(database_url, smtp, 1, ("sms",))
    providers.script("messages", hang(1.5))  # answered, but only after the SIGTERM below
    fleet.start(TICKER, "ticker")
    worker = fleet.start(WORKER, "worker")
    providers.wait_for("messages", 1, timeout=120)
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(30) == 0
    [row] = messages(engine, world)
    assert row.status == "sent"
    assert providers.count("messages") == 1
    connection = Redis.from_url(redis_url)
    assert StartedJobRegistry("sms", connection=connection).count == 0
    connection.close()
    engine.dispose()
