"""Webhook URLs on loopback or private addresses: allowed by default in development, refused in production."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from litestar.testing import TestClient
from redis import Redis
from sqlalchemy import Engine

from libs.app import create_service_app
from libs.crypto import SecretBox
from libs.db.session import system_session
from libs.queue import JobSpec, QueueName, enqueue_many
from libs.security import Role
from libs.settings import Environment
from services.campaign.inbound.controllers import INBOUND_CONTROLLERS
from services.campaign.inbound.settings import InboundSettings
from services.campaign.webhooks.controllers import WEBHOOK_CONTROLLERS
from services.campaign.webhooks.signing import UnsafeUrl, check_url
from tests.services.campaign.inbound.factories import add_message, create_world, one
from tests.services.campaign.inbound.receiver import Receiver, receiver
from tests.support.tokens import TokenSigner

PRODUCTION_SECRET = "a-production-secret-key-that-is-long-enough-0123456789"


@pytest.fixture
def hook() -> Iterator[Receiver]:
    with receiver() as r:
        yield r


def settings_for(monkeypatch: pytest.MonkeyPatch, env: str, **variables: str) -> InboundSettings:
    """Settings read from the environment as a process of ``env`` reads them, with no SDR_WEBHOOKS_ALLOW_PRIVATE."""
    monkeypatch.delenv("SDR_WEBHOOKS_ALLOW_PRIVATE", raising=False)
    monkeypatch.setenv("SDR_ENV", env)
    monkeypatch.setenv("SDR_SECRET_KEY", PRODUCTION_SECRET)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    return InboundSettings()


@pytest.mark.parametrize(("env", "allowed"), [("development", True), ("test", True), ("production", False)])
def test_the_default_depends_on_the_environment(monkeypatch: pytest.MonkeyPatch, env: str, allowed: bool) -> None:
    settings = settings_for(monkeypatch, env)

    assert settings.webhooks_allow_private is allowed
    if allowed:
        target = check_url("http://127.0.0.1:9/hook", allow_private=settings.webhooks_allow_private)
        assert target.address == "127.0.0.1"
    else:
        with pytest.raises(UnsafeUrl):
            check_url("http://127.0.0.1:9/hook", allow_private=settings.webhooks_allow_private)


@pytest.mark.parametrize(("env", "given", "allowed"), [("development", "false", False), ("production", "true", True)])
def test_an_explicit_setting_wins_in_either_environment(
    monkeypatch: pytest.MonkeyPatch, env: str, given: str, allowed: bool
) -> None:
    assert settings_for(monkeypatch, env, SDR_WEBHOOKS_ALLOW_PRIVATE=given).webhooks_allow_private is allowed


def test_the_default_holds_when_settings_are_built_from_common_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from libs.settings import CommonSettings
    from services.campaign.inbound.settings import inbound_settings_from

    monkeypatch.delenv("SDR_WEBHOOKS_ALLOW_PRIVATE", raising=False)
    production = CommonSettings(env=Environment.PRODUCTION, secret_key=PRODUCTION_SECRET)
    development = CommonSettings(env=Environment.DEVELOPMENT)
    assert inbound_settings_from(production).webhooks_allow_private is False
    assert inbound_settings_from(development).webhooks_allow_private is True


def client_for(settings: InboundSettings, signer: TokenSigner) -> TestClient:  # type: ignore[type-arg]
    app = create_service_app(
        name="campaign",
        title="inbound test",
        settings=settings,
        route_handlers=[*INBOUND_CONTROLLERS, *WEBHOOK_CONTROLLERS],
        verifier=signer.verifier(),
        state={"inbound_settings": settings},
    )
    return TestClient(app)


def auth(signer: TokenSigner, org_id: uuid.UUID) -> dict[str, str]:
    return {"Authorization": f"Bearer {signer.mint(org_id=org_id, role=Role.ADMIN)}"}


def test_in_development_a_loopback_endpoint_is_saved_and_receives_the_delivery(
    monkeypatch: pytest.MonkeyPatch,
    inbound_settings: InboundSettings,
    signer: TokenSigner,
    engine: Engine,
    box: SecretBox,
    redis: Redis,
    hook: Receiver,
    run_inbound: Callable[[], int],
) -> None:
    settings = settings_for(monkeypatch, "development")
    world: Any = create_world(engine, box)
    with client_for(settings, signer) as client:
        created = client.post(
            "/api/webhooks", json={"url": hook.url, "event_types": ["sent"]}, headers=auth(signer, world.org_id)
        )
    assert created.status_code == 201, created.text

    message_id = add_message(engine, world, step=0)
    event_id = uuid.uuid4()
    with system_session(engine) as s:
        s.execute(
            sa.text(
                "INSERT INTO message_events (id, org_id, message_id, lead_id, campaign_id, type, occurred_at, data) "
                "VALUES (:id, :org, :m, :lead, :c, 'sent', now(), '{}')"
            ),
            {"id": event_id, "org": world.org_id, "m": message_id, "lead": world.lead_ids[0], "c": world.campaign_id},
        )
    enqueue_many(
        redis, [JobSpec(QueueName.INBOUND, "services.campaign.inbound.jobs.publish_message_event", (str(event_id),))]
    )
    run_inbound()  # the job reads its settings from the environment: development, nothing set
    assert len(hook.requests) == 1
    assert one(engine, "SELECT status FROM webhook_deliveries") == "delivered"


def test_in_production_a_loopback_endpoint_is_refused_naming_the_url(
    monkeypatch: pytest.MonkeyPatch,
    inbound_settings: InboundSettings,
    signer: TokenSigner,
    engine: Engine,
    box: SecretBox,
    hook: Receiver,
) -> None:
    settings = settings_for(monkeypatch, "production")
    world: Any = create_world(engine, box)
    with client_for(settings, signer) as client:
        refused = client.post(
            "/api/webhooks", json={"url": hook.url, "event_types": ["sent"]}, headers=auth(signer, world.org_id)
        )
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert [error["field"] for error in refused.json()["errors"]] == ["url"]
    assert one(engine, "SELECT count(*) FROM webhook_endpoints") == 0
