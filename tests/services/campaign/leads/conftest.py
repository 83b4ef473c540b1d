"""Fixtures for leads, imports and suppressions: the campaign app, two organizations, an RQ worker."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient
from redis import Redis
from rq import SimpleWorker
from rq.serializers import JSONSerializer
from sqlalchemy import Engine

from libs.db.models import Organization
from libs.db.session import make_engine, system_session
from libs.queue import QueueName, get_queue
from libs.settings import Environment
from services.campaign.app import create_app
from services.campaign.settings import CampaignSettings
from tests.support.actors import ApiActor
from tests.support.tokens import TokenSigner

SECRET_KEY = "leads-tests-secret-key"


class Actor(ApiActor):
    """Someone calling the API: an organization and a role, with a client."""

    # factories ---------------------------------------------------------------------------

    def create_lead(self, **fields: Any) -> dict[str, Any]:
        body = {"email": f"lead-{uuid.uuid4().hex[:8]}@example.com", **fields}
        r = self.post("/api/leads", body)
        assert r.status_code == 201, r.text
        return dict(r.json())

    def upload(self, content: bytes, *, filename: str = "leads.csv", key: str | None = None, **fields: str) -> Any:
        headers = {"Idempotency-Key": key} if key else None
        return self.post(
            "/api/leads/imports", files={"file": (filename, content, "text/csv")}, data=fields, headers=headers
        )

    def suppress(self, value: str, **fields: Any) -> dict[str, Any]:
        r = self.post("/api/suppressions", {"value": value, **fields})
        assert r.status_code in (200, 201), r.text
        return dict(r.json())


@pytest.fixture
def campaign_settings(
    database_url: str, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> CampaignSettings:
    """Settings for the app, and the same ones in the environment for the import job."""
    monkeypatch.setenv("SDR_DATABASE_URL", database_url)
    monkeypatch.setenv("SDR_REDIS_URL", redis_url)
    monkeypatch.setenv("SDR_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SDR_SECRET_KEY", SECRET_KEY)
    monkeypatch.setenv("SDR_ENV", "test")
    return CampaignSettings(
        env=Environment.TEST,
        database_url=database_url,
        redis_url=redis_url,
        data_dir=tmp_path,
        secret_key=SECRET_KEY,  # type: ignore[arg-type]
    )


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """A synchronous engine on this test's database."""
    eng = make_engine(database_url)
    yield eng
    eng.dispose()


@pytest.fixture
def client(campaign_settings: CampaignSettings, signer: TokenSigner) -> Iterator[TestClient]:  # type: ignore[type-arg]
    """The campaign app over a test client."""
    with TestClient(create_app(campaign_settings, verifier=signer.verifier())) as c:
        yield c


def _org(engine: Engine, name: str) -> uuid.UUID:
    org_id = uuid.uuid4()
    with system_session(engine) as s:
        s.add(Organization(id=org_id, name=name))
    return org_id


@pytest.fixture
def alice(client: TestClient, signer: TokenSigner, engine: Engine) -> Actor:  # type: ignore[type-arg]
    """The owner of organization A."""
    return Actor(client, signer, _org(engine, "A"))


@pytest.fixture
def bob(client: TestClient, signer: TokenSigner, engine: Engine) -> Actor:  # type: ignore[type-arg]
    """The owner of organization B."""
    return Actor(client, signer, _org(engine, "B"))


@pytest.fixture
def run_jobs(redis_url: str) -> Iterator[Any]:
    """Run every queued job on the default queue with a real RQ worker, until the queue is empty."""
    connection = Redis.from_url(redis_url)

    def work() -> int:
        queue = get_queue(QueueName.DEFAULT, connection)
        pending = queue.count
        SimpleWorker([queue], connection=connection, serializer=JSONSerializer).work(burst=True)
        return pending

    yield work
    connection.close()
