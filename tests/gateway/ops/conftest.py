"""The gateway with its operator tooling, in one process, on this test's PostgreSQL and Redis."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa
from litestar.testing import TestClient
from redis import Redis
from rq import SimpleWorker
from rq.serializers import JSONSerializer
from sqlalchemy import Engine

from gateway.app import create_app
from gateway.settings import GatewaySettings
from libs.db.session import make_engine
from libs.queue import QueueName, get_queue
from libs.security import Role
from libs.settings import Environment
from tests.gateway.apps import create_echo_app
from tests.gateway.ops.apps import ACCOUNTS, PASSWORD, create_auth_app
from tests.support.tokens import TokenSigner

JOBS = "tests.gateway.ops.jobs"
EDGE = "http://edge.example"


@dataclass
class Ops:
    """A running gateway and the means to act as each kind of caller."""

    client: TestClient[Any]
    signer: TokenSigner
    redis: Redis
    engine: Engine

    def operator(self) -> dict[str, str]:
        return self.signer.headers(org_id=uuid.UUID(int=1), operator=True, role=Role.MEMBER)

    def customer_admin(self, org_id: uuid.UUID | None = None) -> dict[str, str]:
        return self.signer.headers(org_id=org_id or uuid.UUID(int=2), role=Role.ADMIN)

    def member(self) -> dict[str, str]:
        return self.signer.headers(org_id=uuid.UUID(int=2), role=Role.MEMBER)

    def login(self, email: str = "ops@tidewater.test", password: str = PASSWORD) -> Any:
        """Sign in through the form as a browser would; return the final response."""
        form = self.client.get("/ops/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert csrf is not None
        return self.client.post(
            "/ops/login",
            data={"csrf": csrf.group(1), "email": email, "password": password},
            headers={"Origin": EDGE},
            follow_redirects=False,
        )

    def csrf(self) -> str:
        token = self.client.cookies.get("_csrf_token")
        assert token
        return token


def gateway_settings(database_url: str, redis_url: str, **overrides: Any) -> GatewaySettings:
    return GatewaySettings(
        env=Environment.TEST,
        database_url=database_url,
        redis_url=redis_url,
        readiness_timeout=1.0,
        ops_stream_interval=0.2,
        ops_ledger_interval=0.2,
        metrics_ledger_cache_seconds=0,
        **overrides,
    )


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url, pool_size=1)
    yield engine
    engine.dispose()


def add_accounts(engine: Engine) -> None:
    """Give the test accounts their users rows: an operator session is checked against ``users.operator``."""
    with engine.begin() as conn:
        for account in ACCOUNTS.values():
            conn.execute(
                sa.text(
                    "INSERT INTO users (id, email, email_normalized, operator, created_at)"
                    " VALUES (:id, :email, :email, :operator, now()) ON CONFLICT DO NOTHING"
                ),
                {"id": account.user_id, "email": account.email, "operator": account.operator},
            )


@pytest.fixture
def ops(database_url: str, redis_url: str, redis: Redis, engine: Engine, signer: TokenSigner) -> Iterator[Ops]:
    add_accounts(engine)
    apps = {"auth": create_auth_app(signer), "brand": create_echo_app("brand"), "campaign": create_echo_app("campaign")}
    gateway = create_app(gateway_settings(database_url, redis_url), upstream_apps=apps)
    with TestClient(gateway, base_url=EDGE) as client:
        yield Ops(client=client, signer=signer, redis=redis, engine=engine)


def run_jobs(
    redis: Redis, *, ok: int = 3, failed: int = 2, waiting: int = 2, queue: QueueName = QueueName.EMAIL
) -> None:
    """Give the queue real history: finished and failed jobs run by a real worker, then waiting ones."""
    q = get_queue(queue, redis)
    for i in range(ok):
        q.enqueue(f"{JOBS}.succeed", [str(uuid.uuid4())], job_id=f"{queue}_ok_{i}")
    for i in range(failed):
        q.enqueue(f"{JOBS}.fail", [str(uuid.uuid4())], job_id=f"{queue}_bad_{i}")
    SimpleWorker([q], connection=redis, serializer=JSONSerializer).work(burst=True, logging_level="CRITICAL")
    for i in range(waiting):
        q.enqueue(f"{JOBS}.succeed", [str(uuid.uuid4())], job_id=f"{queue}_wait_{i}")
