"""DKIM: a message signed by Tidewater verifies with dkimpy, the key served by the loopback DNS server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime

import dkim as dkimpy
import pytest

from libs.crypto import SecretBox, SecretBoxError
from libs.deliverability import dkim
from libs.deliverability.dns_preflight import DnsConfig, Lookups, make_resolver
from tests.support.dns import DnsServer, dns_server, txt

MESSAGE = (
    b"Message-ID: <m1@acme.example>\r\n"
    b"Date: Thu, 03 Dec 2026 12:00:00 +0000\r\n"
    b"From: Jane <jane@acme.example>\r\n"
    b"To: grace@hopper.example\r\n"
    b"Subject: A note\r\n"
    b"List-Unsubscribe: <https://t.example/u/1>,\r\n <mailto:unsubscribe@acme.example?subject=unsubscribe>\r\n"
    b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
    b"\r\n"
    b"Hi Grace,\r\n\r\nHow is everything?\r\n"
)


@pytest.fixture(scope="module")
def pair() -> dkim.KeyPair:
    return dkim.generate()


@pytest.fixture
def server(pair: dkim.KeyPair) -> Iterator[DnsServer]:
    with dns_server({"tw202612._domainkey.acme.example": [txt(dkim.record_value(pair.public_key))]}) as s:
        yield s


def _lookups(server: DnsServer) -> Lookups:
    return Lookups(make_resolver(DnsConfig(nameservers=(f"127.0.0.1:{server.port}",), timeout=1)))


def test_a_signed_message_verifies_with_the_key_served_by_dns(pair: dkim.KeyPair, server: DnsServer) -> None:
    signed = dkim.sign(MESSAGE, "acme.example", "tw202612", pair.private_pem)
    assert signed.startswith(b"DKIM-Signature: ")
    assert dkimpy.verify(signed, dnsfunc=_lookups(server).dkim_txt)
    assert server.queries["tw202612._domainkey.acme.example"] >= 1
    header = signed.split(b"\r\n\r\n")[0].decode()
    assert "c=relaxed/relaxed" in header
    assert "d=acme.example" in header
    signed_headers = header.split("h=")[1].split(";")[0].replace("\r\n", "").replace(" ", "")
    assert set(signed_headers.split(":")) == {
        "from",
        "to",
        "subject",
        "date",
        "message-id",
        "list-unsubscribe",
        "list-unsubscribe-post",
    }


def test_a_changed_body_or_header_no_longer_verifies(pair: dkim.KeyPair, server: DnsServer) -> None:
    signed = dkim.sign(MESSAGE, "acme.example", "tw202612", pair.private_pem)
    lookups = _lookups(server)
    assert not dkimpy.verify(signed.replace(b"How is", b"How was"), dnsfunc=lookups.dkim_txt)
    assert not dkimpy.verify(signed.replace(b"Subject: A note", b"Subject: Another"), dnsfunc=lookups.dkim_txt)


def test_another_published_key_does_not_verify(pair: dkim.KeyPair, server: DnsServer) -> None:
    server.set("tw202612._domainkey.acme.example", [txt(dkim.record_value(dkim.generate().public_key))])
    signed = dkim.sign(MESSAGE, "acme.example", "tw202612", pair.private_pem)
    assert not dkimpy.verify(signed, dnsfunc=_lookups(server).dkim_txt)


def test_the_record_publishes_the_public_key_as_an_rsa_dkim1_key(pair: dkim.KeyPair) -> None:
    assert dkim.record_name("tw202612", "acme.example") == "tw202612._domainkey.acme.example"
    assert dkim.record_value(pair.public_key) == f"v=DKIM1; k=rsa; p={pair.public_key}"
    assert "PRIVATE KEY" in pair.private_pem
    assert len(pair.public_key) > 300  # 2048 bits, base64 DER


def test_a_sealed_key_opens_only_for_its_organization_and_domain(pair: dkim.KeyPair) -> None:
    box = SecretBox(["k1"])
    org = uuid.uuid4()
    token = dkim.seal(box, org, "acme.example", pair.private_pem)
    assert pair.private_pem not in token
    assert dkim.unseal(box, org, "acme.example", token) == pair.private_pem
    with pytest.raises(SecretBoxError):
        dkim.unseal(box, uuid.uuid4(), "acme.example", token)
    with pytest.raises(SecretBoxError):
        dkim.unseal(box, org, "other.example", token)


def test_selectors_are_per_month_and_a_rotation_in_the_same_month_gets_a_new_one() -> None:
    december = datetime(2026, 12, 3)
    assert dkim.selector_for(december) == "tw202612"
    assert dkim.selector_for(december, "tw202611") == "tw202612"
    assert dkim.selector_for(december, "tw202612") == "tw202612b"
    assert dkim.selector_for(december, "tw202612b") == "tw202612c"
