"""Webhook URLs whose address embeds a non-public IPv4 address (NAT64, mapped, 6to4 ...) are refused like it."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from litestar.testing import TestClient
from sqlalchemy import Engine

from libs.crypto import SecretBox
from libs.security import Role
from services.campaign.webhooks.signing import UnsafeUrl, check_url
from tests.services.campaign.inbound.factories import create_world, one
from tests.support.tokens import TokenSigner

EMBEDDED = [
    "http://[64:ff9b::7f00:1]/hook",
    "http://[64:ff9b::a9fe:a9fe]/latest/meta-data",
    "http://[::ffff:7f00:1]/hook",
    "http://[::127.0.0.1]/hook",
    "http://[::ffff:0:a00:1]/hook",
    "http://[2002:7f00:1::1]/hook",
    "http://[2001:0:7f00:1::]/hook",
    "http://[64:ff9b:1::808:808]/hook",
    "http://100.64.0.1/hook",
    "http://[fec0::1]/hook",
]


@pytest.mark.parametrize("url", EMBEDDED)
def test_check_url_refuses_embedded_non_public_addresses(url: str) -> None:
    with pytest.raises(UnsafeUrl, match="not public"):
        check_url(url, allow_private=False)


def test_allowing_private_addresses_still_allows_them() -> None:
    # Development's rule: a receiver on the developer's own machine, in any spelling.
    assert check_url("http://[64:ff9b::7f00:1]:9/hook", allow_private=True).address == "64:ff9b::7f00:1"
    assert check_url("http://127.0.0.1:9/hook", allow_private=True).address == "127.0.0.1"


def test_a_public_nat64_address_is_allowed() -> None:
    target = check_url("http://[64:ff9b::808:808]/hook", allow_private=False)
    assert (target.address, target.port) == ("64:ff9b::808:808", 80)


def test_the_api_refuses_them_on_create_and_update_naming_the_url(
    make_client: Callable[..., TestClient],  # type: ignore[type-arg]
    signer: TokenSigner,
    engine: Engine,
    box: SecretBox,
) -> None:
    world: Any = create_world(engine, box)
    headers = {"Authorization": f"Bearer {signer.mint(org_id=world.org_id, role=Role.ADMIN)}"}
    client = make_client(webhooks_allow_private=False)
    for url in EMBEDDED:
        r = client.post("/api/webhooks", json={"url": url, "event_types": ["sent"]}, headers=headers)
        assert r.status_code == 422, url
        [error] = r.json()["errors"]
        assert error["field"] == "url"
        assert "not public" in error["message"]
    assert one(engine, "SELECT count(*) FROM webhook_endpoints") == 0
    created = client.post(
        "/api/webhooks", json={"url": "http://[64:ff9b::808:808]/hook", "event_types": ["sent"]}, headers=headers
    )
    assert created.status_code == 201, created.text
    r = client.patch(f"/api/webhooks/{created.json()['id']}", json={"url": EMBEDDED[0]}, headers=headers)
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "url"
    assert uuid.UUID(created.json()["id"])
