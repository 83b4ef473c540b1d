"""Fixtures of the inbound tests: the inbound routes on a service app, an RQ worker, the job environment."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from litestar.testing import TestClient
from pydantic import SecretStr
from redis import Redis
from rq import SimpleWorker
from rq.serializers import JSONSerializer
from sqlalchemy import Engine

from libs.app import create_service_app
from libs.crypto import SecretBox
from libs.db.session import make_engine
from libs.queue import QueueName, get_queue
from libs.settings import Environment
from services.campaign.inbound import jobs
from services.campaign.inbound.controllers import INBOUND_CONTROLLERS
from services.campaign.inbound.settings import InboundSettings
from services.campaign.webhooks.controllers import WEBHOOK_CONTROLLERS
from tests.support.tokens import TokenSigner

EMAIL_SECRET = "inbound-mail-secret"


@pytest.fixture
def inbound_settings(database_url: str, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> InboundSettings:
    """Settings of the routes; the same values reach the jobs through the environment, as in a worker."""
    env = {
        "SDR_ENV": "test",
        "SDR_DATABASE_URL": database_url,
        "SDR_REDIS_URL": redis_url,
        "SDR_INBOUND_EMAIL_SECRET": EMAIL_SECRET,
        "SDR_WEBHOOK_BACKOFF_BASE": "0",
        "SDR_WEBHOOK_MAX_ATTEMPTS": "3",
        "SDR_WEBHOOK_TIMEOUT": "5",
        "SDR_WEBHOOKS_ALLOW_PRIVATE": "false",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("SDR_PUBLIC_BASE_URL", raising=False)
    return InboundSettings(
        env=Environment.TEST,
        database_url=database_url,
        redis_url=redis_url,
        inbound_email_secret=SecretStr(EMAIL_SECRET),
        webhook_backoff_base=0,
        webhook_max_attempts=3,
    )


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """A sync engine on this test's database."""
    eng = make_engine(database_url, pool_size=2)
    yield eng
    eng.dispose()


@pytest.fixture
def box(inbound_settings: InboundSettings) -> SecretBox:
    """The box the brand service seals provider secrets with."""
    return SecretBox.from_settings(inbound_settings)


@pytest.fixture
def make_client(inbound_settings: InboundSettings, signer: TokenSigner) -> Iterator[Callable[..., TestClient]]:  # type: ignore[type-arg]
    """Build a client on an app mounting the inbound controllers, with settings overrides."""
    clients: list[TestClient] = []  # type: ignore[type-arg]

    def build(**overrides: object) -> TestClient:  # type: ignore[type-arg]
        settings = inbound_settings.model_copy(update=overrides)
        app = create_service_app(
            name="campaign",
            title="inbound test",
            settings=settings,
            route_handlers=[*INBOUND_CONTROLLERS, *WEBHOOK_CONTROLLERS],
            verifier=signer.verifier(),
            state={"inbound_settings": settings},
        )
        client = TestClient(app)
        client.__enter__()
        clients.append(client)
        return client

    yield build
    for client in clients:
        client.__exit__(None, None, None)
    jobs.dispose()


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:  # type: ignore[type-arg]
    """A client on the inbound routes with the default test settings."""
    return make_client()


@pytest.fixture
def run_inbound(redis: Redis) -> Callable[[], int]:
    """Run every job on the ``inbound`` queue with a real RQ worker (burst); return how many ran."""

    def run() -> int:
        queue = get_queue(QueueName.INBOUND, redis)
        before = queue.finished_job_registry.count + queue.failed_job_registry.count
        worker = SimpleWorker([queue], connection=redis, serializer=JSONSerializer)
        worker.work(burst=True, with_scheduler=False)
        failed = queue.failed_job_registry.get_job_ids()
        assert not failed, f"inbound jobs failed: {failed}"
        return queue.finished_job_registry.count + queue.failed_job_registry.count - before

    return run
