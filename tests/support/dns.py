"""A loopback DNS server (UDP) answering from a table, for the import's MX check and the DNS preflight.

``zone`` maps a domain to what the server says about it: a list of ``(type, rdata)``
records (``("MX", "10 mx.example.net.")``, ``("A", "93.184.216.34")``, ``txt("v=spf1 -all")``),
``[]`` for a name that exists with no records of the type asked, ``None`` for NXDOMAIN; a name
missing from the table gets no answer at all (the client times out). Queries are counted per
name. :meth:`DnsServer.set` changes a name while the server runs.
"""

from __future__ import annotations

import socket
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset

Zone = dict[str, list[tuple[str, str]] | None]


def txt(value: str) -> tuple[str, str]:
    """A TXT record holding ``value``, cut into the 255-octet strings DNS carries (a DKIM key is longer)."""
    chunks = [value[i : i + 255] for i in range(0, len(value), 255)] or [""]
    return ("TXT", " ".join('"' + c.replace("\\", "\\\\").replace('"', '\\"') + '"' for c in chunks))


class DnsServer:
    """Answer DNS queries on 127.0.0.1 from ``zone`` until :meth:`close`."""

    def __init__(self, zone: Zone) -> None:
        self.zone = {name.rstrip(".").lower(): records for name, records in zone.items()}
        self.queries: Counter[str] = Counter()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self.port: int = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="loopback-dns", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self._sock.recvfrom(4096)
            except TimeoutError:
                continue
            query = dns.message.from_wire(data)
            question = query.question[0]
            name = question.name.to_text().rstrip(".").lower()
            self.queries[name] += 1
            if name not in self.zone:
                continue  # silence: the resolver times out
            response = dns.message.make_response(query)
            records = self.zone[name]
            if records is None:
                response.set_rcode(dns.rcode.NXDOMAIN)
            else:
                wanted = dns.rdatatype.to_text(question.rdtype)
                for kind, rdata in records:
                    if kind == wanted:
                        response.answer.append(dns.rrset.from_text(question.name, 300, "IN", kind, rdata))
            self._sock.sendto(response.to_wire(), peer)

    def set(self, name: str, records: list[tuple[str, str]] | None) -> None:
        """Answer ``records`` for ``name`` from now on (``None``: NXDOMAIN)."""
        self.zone[name.rstrip(".").lower()] = records

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._sock.close()


@contextmanager
def dns_server(zone: Zone) -> Iterator[DnsServer]:
    """Run a :class:`DnsServer` for the block."""
    server = DnsServer(zone)
    try:
        yield server
    finally:
        server.close()
