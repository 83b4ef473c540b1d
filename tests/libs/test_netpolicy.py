"""One address policy: embedded IPv4 forms are unwrapped, every non-public range is refused, public ones pass."""

from __future__ import annotations

import socket

import pytest

from libs.netpolicy import embedded, is_public, parse, refusal

REFUSED = {
    "127.0.0.1": "loopback",
    "127.8.9.10": "loopback",
    "0.0.0.0": "unspecified",
    "0.1.2.3": "unspecified",
    "10.1.2.3": "private",
    "172.16.0.1": "private",
    "192.168.1.1": "private",
    "100.64.0.1": "shared (carrier-grade NAT)",
    "100.127.255.254": "shared (carrier-grade NAT)",
    "169.254.169.254": "link-local",
    "224.0.0.1": "multicast",
    "255.255.255.255": "broadcast",
    "240.0.0.1": "reserved",
    "192.0.0.8": "reserved",
    "198.18.0.1": "reserved",
    "192.0.2.1": "documentation",
    "203.0.113.9": "documentation",
    "::": "unspecified",
    "::1": "loopback",
    "fd00::1": "private",
    "fe80::1": "link-local",
    "fe80::1%eth0": "link-local",
    "fec0::1": "link-local",
    "ff02::1": "multicast",
    "2001:db8::1": "documentation",
    "100::1": "reserved",
    "64:ff9b:1::808:808": "reserved",  # local-use NAT64: its embedding depends on the deployment
    # NAT64 (well-known prefix), IPv4-mapped, -compatible and -translated forms of loopback/private/metadata
    "64:ff9b::7f00:1": "loopback (embedded in 64:ff9b::7f00:1)",
    "64:ff9b::a9fe:a9fe": "link-local (embedded in 64:ff9b::a9fe:a9fe)",
    "64:ff9b::10.0.0.1": "private (embedded in 64:ff9b::a00:1)",
    "::ffff:127.0.0.1": "loopback (embedded in ::ffff:7f00:1)",
    "::ffff:169.254.169.254": "link-local (embedded in ::ffff:a9fe:a9fe)",
    "::127.0.0.1": "loopback (embedded in ::7f00:1)",
    "::ffff:0:10.0.0.1": "private (embedded in ::ffff:0:a00:1)",
    "::ffff:100.64.0.1": "shared (carrier-grade NAT) (embedded in ::ffff:6440:1)",
    # 6to4 carries the IPv4 address in bits 16-48
    "2002:7f00:1::1": "loopback (embedded in 2002:7f00:1::1)",
    "2002:c0a8:101::": "private (embedded in 2002:c0a8:101::)",
    # Teredo: server in bits 32-64, client obfuscated in the last 32
    "2001:0:7f00:1::": "loopback (embedded in 2001:0:7f00:1::)",
    "2001:0:4136:e378:8000:63bf:3fff:fdd2": "documentation (embedded in 2001:0:4136:e378:8000:63bf:3fff:fdd2)",
}

PUBLIC = [
    "8.8.8.8",
    "1.1.1.1",
    "93.184.216.34",
    "2606:4700::1111",
    "64:ff9b::808:808",
    "::ffff:8.8.8.8",
    "2002:808:808::1",
]


@pytest.mark.parametrize(("address", "why"), list(REFUSED.items()))
def test_non_public_addresses_are_refused_with_the_reason(address: str, why: str) -> None:
    assert refusal(address) == why
    assert is_public(address) is False


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_pass_also_when_translated(address: str) -> None:
    assert refusal(address) is None
    assert is_public(parse(address))


def test_embedded_addresses_are_found() -> None:
    assert [str(a) for a in embedded(parse("64:ff9b::7f00:1"))] == ["127.0.0.1"]
    assert [str(a) for a in embedded(parse("2002:c0a8:101::"))] == ["192.168.1.1"]
    assert [str(a) for a in embedded(parse("2001:0:4136:e378:8000:63bf:3fff:fdd2"))] == ["65.54.227.120", "192.0.2.45"]
    assert embedded(parse("::1")) == []
    assert embedded(parse("8.8.8.8")) == []


@pytest.mark.parametrize("host", ["64:ff9b::7f00:1", "::ffff:127.0.0.1", "2002:7f00:1::1", "localhost", "2130706433"])
def test_what_the_resolver_returns_is_judged(host: str) -> None:
    # The real resolution path: getaddrinfo's answers (numeric forms included) go through parse and refusal.
    infos = socket.getaddrinfo(host, 80, type=socket.SOCK_STREAM)
    assert infos
    assert all(refusal(str(info[4][0])) is not None for info in infos)


def test_not_an_address_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="does not appear to be"):
        refusal("example.com")
