"""Customer webhooks: CRUD, the SSRF guard, signed deliveries to a loopback receiver, retries with a log."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from litestar.testing import TestClient
from redis import Redis
from sqlalchemy import Engine

from libs.crypto import SecretBox
from libs.db.session import system_session
from libs.queue import JobSpec, QueueName, enqueue_many
from libs.security import Role
from services.campaign.webhooks.signing import verify
from tests.services.campaign.inbound.factories import add_message, create_world, one
from tests.services.campaign.inbound.receiver import Receiver, receiver
from tests.support.tokens import TokenSigner

BLOCKED = [
    "http://127.0.0.1/x",
    "http://localhost/x",
    "http://[::1]/x",
    "http://0.0.0.0/x",
    "http://10.0.0.1/x",
    "http://172.16.0.1/x",
    "http://192.168.1.1/x",
    "http://169.254.169.254/latest/meta-data",
    "http://[fd00::1]/x",
    "http://[::ffff:127.0.0.1]/x",
    "http://2130706433/x",
    "http://0177.0.0.1/x",
    "http://good.example@127.0.0.1/x",
    "file:///etc/passwd",
    "gopher://127.0.0.1:70/x",
    "ftp://127.0.0.1/x",
]


@pytest.fixture
def world(engine: Engine, box: SecretBox) -> Any:
    return create_world(engine, box)


@pytest.fixture
def hook() -> Iterator[Receiver]:
    with receiver() as r:
        yield r


def auth(signer: TokenSigner, org_id: uuid.UUID, role: Role = Role.ADMIN) -> dict[str, str]:
    return {"Authorization": f"Bearer {signer.mint(org_id=org_id, role=role)}"}


def publish_sent_event(engine: Engine, redis: Redis, world: Any, *, step: int = 0) -> uuid.UUID:
    """Record a ``sent`` event the way the worker does and ask the inbound queue to publish it."""
    message_id = add_message(engine, world, step=step)
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
        redis,
        [JobSpec(QueueName.INBOUND, "services.campaign.inbound.jobs.publish_message_event", (str(event_id),))],
    )
    return event_id


def test_crud_shows_the_secret_once_and_isolates_tenants(
    make_client: Callable[..., TestClient],
    signer: TokenSigner,
    world: Any,
    hook: Receiver,  # type: ignore[type-arg]
) -> None:
    client = make_client(webhooks_allow_private=True)
    headers = auth(signer, world.org_id)
    r = client.post(
        "/api/webhooks", json={"url": hook.url, "event_types": ["replied", "sent", "replied"]}, headers=headers
    )
    assert r.status_code == 201
    created = r.json()
    assert created["secret"].startswith("whsec_")
    assert created["event_types"] == ["replied", "sent"]
    webhook_id = created["id"]
    shown = client.get(f"/api/webhooks/{webhook_id}", headers=headers).json()
    assert "secret" not in shown
    assert created["secret"] not in json.dumps(client.get("/api/webhooks", headers=headers).json())
    r = client.patch(f"/api/webhooks/{webhook_id}", json={"active": False, "event_types": ["bounced"]}, headers=headers)
    assert r.json()["active"] is False
    assert r.json()["event_types"] == ["bounced"]
    assert (
        client.post(
            "/api/webhooks",
            json={"url": hook.url, "event_types": ["sent"]},
            headers=auth(signer, world.org_id, Role.MEMBER),
        ).status_code
        == 403
    )
    assert (
        client.post("/api/webhooks", json={"url": hook.url, "event_types": ["nope"]}, headers=headers).status_code
        == 422
    )
    stranger = auth(signer, uuid.uuid4())
    assert client.get(f"/api/webhooks/{webhook_id}", headers=stranger).status_code == 404
    assert client.get("/api/webhooks", headers=stranger).json()["items"] == []
    assert client.delete(f"/api/webhooks/{webhook_id}", headers=stranger).status_code == 404
    assert client.delete(f"/api/webhooks/{webhook_id}", headers=headers).status_code == 204
    assert client.get(f"/api/webhooks/{webhook_id}", headers=headers).status_code == 404
    assert client.get("/api/webhooks").status_code == 401


def test_private_and_reserved_addresses_are_refused_without_a_connection(
    client: TestClient,
    signer: TokenSigner,
    world: Any,
    hook: Receiver,
    engine: Engine,  # type: ignore[type-arg]
) -> None:
    headers = auth(signer, world.org_id)
    for url in [*BLOCKED, hook.url]:
        r = client.post("/api/webhooks", json={"url": url, "event_types": ["sent"]}, headers=headers)
        assert r.status_code == 422, url
        assert r.json()["errors"][0]["field"] == "url"
    assert hook.connections == 0
    assert one(engine, "SELECT count(*) FROM webhook_endpoints") == 0


def test_a_delivery_is_signed_with_the_documented_recipe(
    make_client: Callable[..., TestClient],  # type: ignore[type-arg]
    signer: TokenSigner,
    world: Any,
    hook: Receiver,
    engine: Engine,
    redis: Redis,
    run_inbound: Callable[[], int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SDR_WEBHOOKS_ALLOW_PRIVATE", "true")
    client = make_client(webhooks_allow_private=True)
    secret = client.post(
        "/api/webhooks", json={"url": hook.url, "event_types": ["sent"]}, headers=auth(signer, world.org_id)
    ).json()["secret"]
    event_id = publish_sent_event(engine, redis, world)
    run_inbound()
    (request,) = hook.requests
    header = request.headers["tidewater-signature"]
    # The recipe, written out as a receiver would: t=...,v1=hex(hmac_sha256(secret, f"{t}.{body}")).
    fields = dict(part.split("=", 1) for part in header.split(","))
    expected = hmac.new(secret.encode(), f"{fields['t']}.".encode() + request.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(fields["v1"], expected)
    assert verify(secret, header, request.body)
    assert not verify(secret, header, request.body.replace(b"sent", b"sant"))
    assert not verify("whsec_other", header, request.body)
    payload = json.loads(request.body)
    assert payload["id"] == str(event_id)
    assert payload["type"] == "sent"
    assert payload["data"]["lead_id"] == str(world.lead_ids[0])
    assert request.headers["tidewater-event"] == "sent"
    assert one(engine, "SELECT status FROM webhook_deliveries") == "delivered"
    # Publishing the same event again owes nothing new.
    enqueue_many(
        redis, [JobSpec(QueueName.INBOUND, "services.campaign.inbound.jobs.publish_message_event", (str(event_id),))]
    )
    run_inbound()
    assert len(hook.requests) == 1


def test_a_failing_endpoint_is_retried_and_every_attempt_is_logged(
    make_client: Callable[..., TestClient],  # type: ignore[type-arg]
    signer: TokenSigner,
    world: Any,
    hook: Receiver,
    engine: Engine,
    redis: Redis,
    run_inbound: Callable[[], int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SDR_WEBHOOKS_ALLOW_PRIVATE", "true")
    client = make_client(webhooks_allow_private=True)
    headers = auth(signer, world.org_id)
    webhook_id = client.post("/api/webhooks", json={"url": hook.url, "event_types": ["sent"]}, headers=headers).json()[
        "id"
    ]
    hook.answer(500, 503)
    publish_sent_event(engine, redis, world)
    run_inbound()
    assert len(hook.requests) == 3
    assert len({r.headers["tidewater-delivery"] for r in hook.requests}) == 1
    (delivery,) = client.get(
        f"/api/webhooks/{webhook_id}/deliveries", headers=auth(signer, world.org_id, Role.MEMBER)
    ).json()["items"]
    assert delivery["status"] == "delivered"
    assert delivery["attempts"] == 3
    assert [a["status_code"] for a in delivery["attempt_log"]] == [500, 503, 200]
    assert [a["number"] for a in delivery["attempt_log"]] == [1, 2, 3]
    assert delivery["attempt_log"][0]["error"] == "HTTP 500"

    hook.answer(500, 500, 500)
    publish_sent_event(engine, redis, world, step=2)
    run_inbound()
    items = client.get(f"/api/webhooks/{webhook_id}/deliveries", headers=headers).json()["items"]
    failed = next(d for d in items if d["id"] != delivery["id"])
    assert failed["status"] == "failed"
    assert [a["status_code"] for a in failed["attempt_log"]] == [500, 500, 500]


def test_a_private_address_is_refused_again_at_delivery_time(
    make_client: Callable[..., TestClient],  # type: ignore[type-arg]
    signer: TokenSigner,
    world: Any,
    hook: Receiver,
    engine: Engine,
    redis: Redis,
    run_inbound: Callable[[], int],
) -> None:
    # Saved while private addresses were allowed; the jobs' environment no longer allows them.
    client = make_client(webhooks_allow_private=True)
    client.post("/api/webhooks", json={"url": hook.url, "event_types": ["sent"]}, headers=auth(signer, world.org_id))
    publish_sent_event(engine, redis, world)
    run_inbound()
    assert hook.connections == 0
    assert one(engine, "SELECT count(*) FROM webhook_attempts") == 3
    assert one(engine, "SELECT status FROM webhook_deliveries") == "failed"
    assert one(engine, "SELECT error FROM webhook_attempts WHERE number = 1").startswith("refused:")
