"""Fixtures for campaigns: the campaign app on a fresh database, seeded organizations, actors by role."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
import uvicorn
from litestar import Litestar
from litestar.testing import TestClient

from libs.db.session import make_engine
from libs.settings import Environment
from services.campaign.app import create_app
from services.campaign.campaigns.brand_client import BrandClient
from services.campaign.settings import CampaignSettings
from tests.support.actors import ApiActor
from tests.support.servers import free_port
from tests.support.tokens import TokenSigner

NOW = datetime.now(UTC)
NOWHERE = "http://127.0.0.1:9"
"""A brand service URL nothing listens on (tests that launch start a real one)."""


@contextmanager
def serve(app: Litestar) -> Iterator[str]:
    """Run ``app`` under uvicorn on a loopback port in a thread; stop it on exit."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name="brand-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the brand service did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)


@pytest.fixture
def campaign_settings(database_url: str, redis_url: str) -> CampaignSettings:
    """Settings for this test's database and Redis."""
    return CampaignSettings(env=Environment.TEST, database_url=database_url, redis_url=redis_url)


@pytest.fixture
def db(database_url: str) -> Iterator[sa.Engine]:
    """A superuser engine for seeding and for reading rows behind the API's back."""
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def brand_url() -> str:
    """Where the campaign app finds the brand service (overridden where a launch needs a real one)."""
    return NOWHERE


@pytest.fixture
def client(campaign_settings: CampaignSettings, signer: TokenSigner, brand_url: str) -> Iterator[TestClient]:  # type: ignore[type-arg]
    """The campaign app in-process."""
    app = create_app(campaign_settings, verifier=signer.verifier(), brand_client=BrandClient(brand_url, timeout=10.0))
    with TestClient(app) as c:
        yield c


# --- seeding -----------------------------------------------------------------------------------


def seed_org(db: sa.Engine, name: str = "org") -> uuid.UUID:
    org_id = uuid.uuid4()
    with db.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO organizations (id, name, created_at) VALUES (:id, :name, now())"),
            {"id": org_id, "name": name},
        )
    return org_id


def seed_brand(db: sa.Engine, org_id: uuid.UUID, *, ready_email: bool = True, name: str = "Acme") -> uuid.UUID:
    brand_id = uuid.uuid4()
    with db.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO brands (id, org_id, name, postal_address, opt_out_email, timezone, created_at) "
                "VALUES (:id, :org, :name, :addr, :opt, 'UTC', now())"
            ),
            {
                "id": brand_id,
                "org": org_id,
                "name": name,
                "addr": "1 Main St, Springfield" if ready_email else None,
                "opt": "Click to unsubscribe." if ready_email else None,
            },
        )
        if ready_email:
            conn.execute(
                sa.text(
                    "INSERT INTO senders (id, org_id, brand_id, kind, from_address, verified_at, created_at) "
                    "VALUES (:id, :org, :brand, 'email', 'jane@acme.example', now(), now())"
                ),
                {"id": uuid.uuid4(), "org": org_id, "brand": brand_id},
            )
    return brand_id


def seed_lead(db: sa.Engine, org_id: uuid.UUID, **fields: Any) -> uuid.UUID:
    lead_id = uuid.uuid4()
    email = fields.pop("email", f"{lead_id.hex[:10]}@example.com")
    values = {
        "id": lead_id,
        "org_id": org_id,
        "email": email,
        "email_normalized": email.lower() if email else None,
        "status": "active",
        "custom_fields": "{}",
        **fields,
    }
    if isinstance(values["custom_fields"], dict):
        values["custom_fields"] = json.dumps(values["custom_fields"])
    columns = ", ".join(values)
    binds = ", ".join(f"CAST(:{k} AS jsonb)" if k == "custom_fields" else f":{k}" for k in values)
    with db.begin() as conn:
        conn.execute(
            sa.text(f"INSERT INTO leads ({columns}, created_at, updated_at) VALUES ({binds}, now(), now())"), values
        )
    return lead_id


def seed_many_leads(db: sa.Engine, org_id: uuid.UUID, n: int, *, domain: str = "bulk.example") -> None:
    with db.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO leads (id, org_id, email, email_normalized, status, custom_fields, created_at, "
                "updated_at) "
                "SELECT gen_random_uuid(), :org, 'l' || g || '@' || :domain, 'l' || g || '@' || :domain, 'active', "
                "'{}'::jsonb, now(), now() FROM generate_series(1, :n) g"
            ),
            {"org": org_id, "n": n, "domain": domain},
        )


def suppress(db: sa.Engine, org_id: uuid.UUID, *, channel: str, kind: str, value: str) -> None:
    with db.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO suppressions (id, org_id, channel, kind, value, reason, created_at) "
                "VALUES (gen_random_uuid(), :org, :channel, :kind, :value, 'manual', now())"
            ),
            {"org": org_id, "channel": channel, "kind": kind, "value": value},
        )


# --- actors ------------------------------------------------------------------------------------


class Actor(ApiActor):
    """Someone calling the API: an organization and a role, with a client."""

    # factories through the API ----------------------------------------------------------------

    def create_campaign(self, brand_id: uuid.UUID, **overrides: Any) -> dict[str, Any]:
        r = self.post("/api/campaigns", {"brand_id": str(brand_id), "name": "Spring outreach", **overrides})
        assert r.status_code == 201, r.text
        return dict(r.json())

    def add_step(self, campaign_id: str, **overrides: Any) -> dict[str, Any]:
        body = {
            "channel": "email",
            "delay": 0,
            "subject_template": "Hi {{ lead.first_name }}",
            "body_template": "Hello {{ lead.first_name }} at {{ lead.company }}, from {{ brand.name }}.",
            **overrides,
        }
        r = self.post(f"/api/campaigns/{campaign_id}/steps", body)
        assert r.status_code == 201, r.text
        return dict(r.json())


@dataclass
class World:
    """Two organizations, each with a brand, and actors for them."""

    a: Actor
    b: Actor
    brand_a: uuid.UUID
    brand_b: uuid.UUID
    db: sa.Engine


@pytest.fixture
def world(client: TestClient, signer: TokenSigner, db: sa.Engine) -> World:  # type: ignore[type-arg]
    org_a, org_b = seed_org(db, "A"), seed_org(db, "B")
    return World(
        a=Actor(client, signer, org_a),
        b=Actor(client, signer, org_b),
        brand_a=seed_brand(db, org_a),
        brand_b=seed_brand(db, org_b),
        db=db,
    )
