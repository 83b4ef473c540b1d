"""SMTP verification connects only to public addresses, judged by libs.netpolicy (embedded IPv4 forms too)."""

from __future__ import annotations

from typing import Any

import pytest

from services.brand.smtp_probe import AddressRefused, resolve
from tests.services.brand.conftest import Actor

EMBEDDED_LOOPBACK = ["64:ff9b::7f00:1", "::ffff:127.0.0.1", "2002:7f00:1::1", "::127.0.0.1"]


@pytest.mark.parametrize("host", [*EMBEDDED_LOOPBACK, "100.64.0.1", "localhost", "2130706433"])
def test_resolve_refuses_non_public_addresses_with_the_reason(host: str) -> None:
    with pytest.raises(AddressRefused, match=r"not public \("):
        resolve(host, 25, allow_private=False)


def test_resolve_allows_them_where_private_hosts_are_allowed() -> None:
    assert resolve("64:ff9b::7f00:1", 25, allow_private=True) == "64:ff9b::7f00:1"
    assert resolve("64:ff9b::808:808", 25, allow_private=False) == "64:ff9b::808:808"


def test_verify_refuses_a_nat64_loopback_host_naming_smtp_host(alice: Actor, client: Any) -> None:
    client.app.state.smtp_check = type(client.app.state.smtp_check)(
        timeout=1.0, ssl_context=client.app.state.smtp_check.ssl_context, allow_private=False
    )
    brand = alice.create_brand()
    for host in EMBEDDED_LOOPBACK:
        sender = alice.create_email_sender(brand["id"], smtp_host=host, smtp_port=2525, smtp_security="none")
        r = alice.post(f"/api/brands/{brand['id']}/senders/{sender['id']}/verify")
        assert r.status_code == 422, host
        [error] = r.json()["errors"]
        assert error["field"] == "smtp_host"
        assert "loopback" in error["message"]
