"""Webhook create and update refuse unknown fields by name, like every other resource."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from litestar.testing import TestClient
from sqlalchemy import Engine

from libs.crypto import SecretBox
from libs.security import Role
from tests.services.campaign.inbound.factories import create_world, one
from tests.support.tokens import TokenSigner


def test_unknown_fields_are_a_422_naming_them(
    make_client: Callable[..., TestClient],  # type: ignore[type-arg]
    signer: TokenSigner,
    engine: Engine,
    box: SecretBox,
) -> None:
    world: Any = create_world(engine, box)
    headers = {"Authorization": f"Bearer {signer.mint(org_id=world.org_id, role=Role.ADMIN)}"}
    client = make_client(webhooks_allow_private=True)
    body = {"url": "http://127.0.0.1:9/hook", "event_types": ["sent"]}
    r = client.post("/api/webhooks", json={**body, "secret": "whsec_mine", "evnt_types": ["failed"]}, headers=headers)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    fields = {e["field"] for e in r.json()["errors"]}
    assert fields == {"secret", "evnt_types"}
    assert one(engine, "SELECT count(*) FROM webhook_endpoints") == 0

    created = client.post("/api/webhooks", json=body, headers=headers)
    assert created.status_code == 201
    webhook_id = created.json()["id"]
    r = client.patch(f"/api/webhooks/{webhook_id}", json={"enabled": False}, headers=headers)
    assert r.status_code == 422
    assert [e["field"] for e in r.json()["errors"]] == ["enabled"]
    assert client.get(f"/api/webhooks/{webhook_id}", headers=headers).json()["active"] is True
    r = client.patch(f"/api/webhooks/{webhook_id}", json={"active": False}, headers=headers)
    assert r.status_code == 200
    assert r.json()["active"] is False
