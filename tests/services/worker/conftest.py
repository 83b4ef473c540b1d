"""Fixtures of the worker tests: loopback providers, worker settings and context, and pipeline helpers."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from redis import Redis
from rq import SimpleWorker
from rq.serializers import JSONSerializer

from libs.db.session import make_engine, system_session
from libs.queue import get_queue
from libs.settings import Environment
from services.worker import jobs
from services.worker.settings import WorkerSettings
from services.worker.ticker import Ticker
from tests.services.worker.factories import World
from tests.support.providers import ProviderServer, provider_server
from tests.support.smtp import SmtpServer


@pytest.fixture
def providers() -> Iterator[ProviderServer]:
    """A loopback Twilio + OpenAI server for this test."""
    with provider_server() as server:
        yield server


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


def noon_in_new_york_offset() -> float:
    """Seconds from now to the next noon in New York: the tests' clock runs there (mid-day, any weekday)."""
    now = datetime.now(UTC)
    local = now.astimezone(ZoneInfo("America/New_York"))
    noon = local.replace(hour=12, minute=0, second=0, microsecond=0)
    if noon <= local:
        noon += timedelta(days=1)
    return (noon.astimezone(UTC) - now).total_seconds()


@pytest.fixture
def wsettings(database_url: str, redis_url: str, tmp_path: Path, providers: ProviderServer) -> WorkerSettings:
    return WorkerSettings(
        env=Environment.TEST,
        database_url=database_url,
        redis_url=redis_url,
        data_dir=tmp_path,
        twilio_base_url=providers.url,
        openai_base_url=providers.url + "/v1",
        job_timeout=30,
        smtp_timeout=2,
        twilio_timeout=2,
        openai_timeout=1,
        openai_max_retries=0,
        repair_after_seconds=0,
        retry_base_seconds=0,
        worker_alive_ttl=3,
        domain_pacing_per_minute=100_000,
        email_hourly_cap=100_000,
        clock_offset_seconds=noon_in_new_york_offset(),
    )


@pytest.fixture
def ctx(wsettings: WorkerSettings) -> Iterator[jobs.Context]:
    context = jobs.Context.create(wsettings)
    jobs.install(context)
    yield context
    context.close()
    jobs.install(None)


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:
    e = make_engine(database_url)
    yield e
    e.dispose()


def drain(ctx: jobs.Context, redis: Redis, rounds: int = 10) -> None:
    """Tick and work until nothing is left to do."""
    ticker = Ticker(ctx.settings, ctx.engine, redis)
    queues = [get_queue(q, redis) for q in ("email", "sms", "voicemail")]
    for _ in range(rounds):
        stats = ticker.tick()
        if stats.jobs == 0 and all(q.count == 0 for q in queues):
            return
        SimpleWorker(queues, connection=redis, serializer=JSONSerializer).work(burst=True)


def messages(engine: sa.Engine, world: World) -> list[sa.Row]:  # type: ignore[type-arg]
    with system_session(engine) as s:
        return s.execute(
            sa.text(
                "SELECT m.*, st.position FROM messages m JOIN campaign_steps st ON st.id = m.step_id "
                "WHERE m.campaign_id = :c ORDER BY m.lead_id, st.position"
            ),
            {"c": world.campaign_id},
        ).all()
