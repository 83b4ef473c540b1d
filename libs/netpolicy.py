"""Which IP addresses a service may connect to on a customer's behalf (webhooks, SMTP checks).

One policy for every outbound connection to an address a customer chose: the address must be
public. IPv6 forms that carry an IPv4 address (IPv4-mapped ``::ffff:a.b.c.d``, IPv4-compatible
``::a.b.c.d``, IPv4-translated ``::ffff:0:a.b.c.d``, NAT64 ``64:ff9b::/96``, 6to4 ``2002::/16``,
Teredo ``2001::/32``) are unwrapped and the embedded address must be public too, so
``http://[64:ff9b::7f00:1]/`` is loopback. Refused: unspecified, loopback, private (RFC 1918,
unique local), shared (CGNAT ``100.64.0.0/10``), link-local, site-local, multicast, broadcast,
documentation, benchmarking, reserved and protocol-assignment ranges, and the local-use NAT64
prefix ``64:ff9b:1::/48`` (its embedding is deployment-specific).

Callers resolve the name once, check every address with :func:`refusal` and connect to the
checked address (no second lookup an attacker's DNS could answer differently). Whether private
addresses are allowed at all (development) stays the caller's setting.
"""

from __future__ import annotations

import ipaddress
from typing import Final

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_V4: Final[tuple[tuple[ipaddress.IPv4Network, str], ...]] = tuple(
    (ipaddress.IPv4Network(net), why)
    for net, why in (
        ("0.0.0.0/8", "unspecified"),
        ("10.0.0.0/8", "private"),
        ("100.64.0.0/10", "shared (carrier-grade NAT)"),
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local"),
        ("172.16.0.0/12", "private"),
        ("192.0.0.0/24", "reserved"),
        ("192.0.2.0/24", "documentation"),
        ("192.88.99.0/24", "reserved"),
        ("192.168.0.0/16", "private"),
        ("198.18.0.0/15", "reserved"),
        ("198.51.100.0/24", "documentation"),
        ("203.0.113.0/24", "documentation"),
        ("224.0.0.0/4", "multicast"),
        ("240.0.0.0/4", "reserved"),
    )
)
_V6: Final[tuple[tuple[ipaddress.IPv6Network, str], ...]] = tuple(
    (ipaddress.IPv6Network(net), why)
    for net, why in (
        ("::/128", "unspecified"),
        ("::1/128", "loopback"),
        ("64:ff9b:1::/48", "reserved"),
        ("100::/64", "reserved"),
        ("2001::/23", "reserved"),
        ("2001:db8::/32", "documentation"),
        ("3fff::/20", "documentation"),
        ("5f00::/16", "reserved"),
        ("fc00::/7", "private"),
        ("fe80::/10", "link-local"),
        ("fec0::/10", "link-local"),
        ("ff00::/8", "multicast"),
    )
)
_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")
_TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")
_COMPATIBLE = ipaddress.IPv6Network("::/96")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_SIXTOFOUR = ipaddress.IPv6Network("2002::/16")
_TEREDO = ipaddress.IPv6Network("2001::/32")


def parse(text: str) -> IPAddress:
    """An address from ``text`` as resolvers and URLs write it (``[v6]`` brackets and a ``%zone`` allowed).

    Raises:
        ValueError: ``text`` is not an IP address.
    """
    return ipaddress.ip_address(text.strip().strip("[]").split("%", 1)[0])


def embedded(address: IPAddress) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries (mapped, compatible, translated, NAT64, 6to4, Teredo)."""
    if isinstance(address, ipaddress.IPv4Address):
        return []
    low32 = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    found: list[ipaddress.IPv4Address] = []
    compatible = address in _COMPATIBLE and int(address) > 1  # not :: or ::1, which are themselves
    if compatible or any(address in net for net in (_MAPPED, _TRANSLATED, _NAT64)):
        found.append(low32)
    if address in _SIXTOFOUR:
        found.append(ipaddress.IPv4Address((int(address) >> 80) & 0xFFFFFFFF))
    if address in _TEREDO:
        server = ipaddress.IPv4Address((int(address) >> 64) & 0xFFFFFFFF)
        found.extend((server, ipaddress.IPv4Address(~int(address) & 0xFFFFFFFF)))
    return found


def _own(address: IPAddress) -> str | None:
    if isinstance(address, ipaddress.IPv4Address):
        if address == ipaddress.IPv4Address("255.255.255.255"):
            return "broadcast"
        table: tuple[tuple[ipaddress.IPv4Network, str], ...] | tuple[tuple[ipaddress.IPv6Network, str], ...] = _V4
    else:
        table = _V6
    for network, why in table:
        if address in network:
            return why
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if address.is_unspecified:
        return "unspecified"
    if address.is_private or address.is_reserved:
        return "private" if address.is_private else "reserved"
    return None


def refusal(address: IPAddress | str) -> str | None:
    """Why ``address`` may not be connected to (``"loopback"``, ``"private"``, ...), or None when it is public.

    An address embedding an IPv4 address answers for the embedded one too, e.g.
    ``"loopback (embedded in 64:ff9b::7f00:1)"``.

    Raises:
        ValueError: ``address`` is a string that is not an IP address.
    """
    ip = parse(address) if isinstance(address, str) else address
    if isinstance(ip, ipaddress.IPv6Address):
        inner = embedded(ip)
        for carried in inner:
            why = _own(carried)
            if why is not None:
                return f"{why} (embedded in {ip.compressed})"
        if inner and ip not in _TEREDO:
            return None  # a translation of a public IPv4 address (NAT64 behind DNS64, 6to4, mapped)
    return _own(ip)


def is_public(address: IPAddress | str) -> bool:
    """Whether a service may connect to ``address`` on a customer's behalf (see :func:`refusal`)."""
    return refusal(address) is None


__all__ = ["IPAddress", "embedded", "is_public", "parse", "refusal"]
