"""The DNS preflight of a sending domain: SPF, DKIM, DMARC and MX, each with the record to publish.

Every check asks the configured resolver (``DnsConfig``: nameservers as ``host`` or
``host:port``, else the system's) and gives one :class:`Finding`: a code (``spf``, ``dkim``,
``dmarc``, ``mx``), a status (``ok``, ``missing``, ``wrong``), what it found in words, and the
exact record (name, type, value) that would make it right.

SPF is evaluated (RFC 7208) for every address of the SMTP host: ``ip4``, ``ip6``, ``a``, ``mx``,
``include``, ``exists`` and ``redirect=``, recursively, with the limit of ten DNS-querying terms
(more is a permanent error, which receivers treat as no SPF at all). Macros and ``ptr`` never
match. DMARC passes when its record has a valid policy and SPF or DKIM passes for the From
domain itself: the envelope sender and the signature's ``d=`` are the From domain, so both are
aligned in relaxed and strict mode alike.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

import dns.exception
import dns.name
import dns.nameserver
import dns.resolver

from libs.deliverability.dkim import record_name, record_value

LOOKUP_LIMIT = 10
"""DNS-querying SPF terms allowed in one evaluation (RFC 7208, 4.6.4)."""
_MX_LIMIT = 10
_QUALIFIERS = {"+": "pass", "-": "fail", "~": "softfail", "?": "neutral"}
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class Status(StrEnum):
    """What a check found."""

    OK = "ok"
    MISSING = "missing"
    WRONG = "wrong"


@dataclass(frozen=True, slots=True)
class Record:
    """A DNS record to publish."""

    name: str
    type: str
    value: str


@dataclass(frozen=True, slots=True)
class Finding:
    """One check's outcome; ``record`` is what to publish (None when nothing to publish would fix it)."""

    code: str
    status: Status
    message: str
    record: Record | None = None


@dataclass(frozen=True, slots=True)
class DnsConfig:
    """Where DNS questions go: ``nameservers`` (``host`` or ``host:port``; none = the system's) and a timeout."""

    nameservers: tuple[str, ...] = ()
    timeout: float = 3.0


@dataclass(frozen=True, slots=True)
class DkimExpectation:
    """What the domain's DKIM record should say: our selector and public key, unless the sender's server signs."""

    selector: str | None = None
    public_key: str | None = None
    own_server: bool = False


class LookupFailed(Exception):
    """No usable answer (timeout, SERVFAIL, no nameserver): the record's state is not known."""


def make_resolver(config: DnsConfig) -> dns.resolver.Resolver:
    """A resolver asking ``config.nameservers`` (the system's when none), each question bounded by the timeout."""
    if config.nameservers:
        resolver = dns.resolver.Resolver(configure=False)
        servers: list[str | dns.nameserver.Nameserver] = []
        for entry in config.nameservers:
            host, _, port = entry.rpartition(":") if entry.count(":") == 1 else (entry, "", "")
            servers.append(dns.nameserver.Do53Nameserver(host, int(port)) if port else host)
        resolver.nameservers = servers
    else:
        resolver = dns.resolver.Resolver()
    resolver.timeout = resolver.lifetime = config.timeout
    return resolver


class Lookups:
    """The questions a preflight asks, through one resolver; NXDOMAIN and no data are an empty answer."""

    def __init__(self, resolver: dns.resolver.Resolver) -> None:
        self.resolver = resolver

    def _answer(self, name: str, rdtype: str) -> list[dns.rdata.Rdata]:
        try:
            return list(self.resolver.resolve(name, rdtype, search=False))
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except dns.exception.DNSException as exc:  # timeout, SERVFAIL, a name DNS cannot carry
            raise LookupFailed(f"no answer for {name} {rdtype} ({type(exc).__name__})") from exc

    def txt(self, name: str) -> list[str]:
        """The TXT records of ``name``, each one's strings joined."""
        return [b"".join(r.strings).decode("utf-8", "replace") for r in self._answer(name, "TXT")]  # type: ignore[attr-defined]

    def addresses(self, name: str) -> list[IpAddress]:
        """The A and AAAA addresses of ``name``."""
        found = [ipaddress.ip_address(r.to_text()) for kind in ("A", "AAAA") for r in self._answer(name, kind)]
        return found

    def mx(self, name: str) -> list[tuple[int, str]]:
        """The MX records of ``name`` as (preference, exchange), the exchange without its final dot."""
        return [(r.preference, r.exchange.to_text().rstrip(".")) for r in self._answer(name, "MX")]  # type: ignore[attr-defined]

    def dkim_txt(self, name: bytes, timeout: int = 5) -> bytes | None:
        """``dnsfunc`` for dkimpy's verifier: the first TXT record of ``name``, or None."""
        del timeout
        found = self.txt(name.decode("ascii").rstrip("."))
        return found[0].encode("utf-8") if found else None


def spf_records(texts: Sequence[str]) -> list[str]:
    """The SPF records among TXT values (``v=spf1`` alone or followed by a space)."""
    return [t for t in texts if t.lower() == "v=spf1" or t.lower().startswith("v=spf1 ")]


class SpfError(Exception):
    """A permanent SPF error (RFC 7208 ``permerror``): a syntax error or too many lookups."""


class SpfEvaluation:
    """``check_host()`` for one address, counting the DNS-querying terms across includes and redirects."""

    def __init__(self, lookups: Lookups, ip: IpAddress, *, limit: int = LOOKUP_LIMIT) -> None:
        self.lookups = lookups
        self.ip = ip
        self.limit = limit
        self.count = 0

    def _charge(self) -> None:
        self.count += 1
        if self.count > self.limit:
            raise SpfError(f"more than {self.limit} DNS lookups")

    def result(self, domain: str) -> str:
        """``pass``, ``fail``, ``softfail``, ``neutral`` or ``none``; raises :class:`SpfError` on a permanent error."""
        records = spf_records(self.lookups.txt(domain))
        if not records:
            return "none"
        if len(records) > 1:
            raise SpfError(f"{domain} has {len(records)} SPF records")
        redirect: str | None = None
        for term in records[0].split()[1:]:
            name, sep, value = term.partition("=")
            if sep and ":" not in name and "/" not in name:
                if name.lower() == "redirect":
                    redirect = value
                continue  # exp= and unknown modifiers do not change the result
            qualifier = _QUALIFIERS.get(term[0], "")
            if qualifier:
                term = term[1:]
            if self._matches(term, domain):
                return qualifier or "pass"
        if redirect is not None:
            self._charge()
            found = self.result(redirect)
            if found == "none":
                raise SpfError(f"redirect to {redirect}, which has no SPF record")
            return found
        return "neutral"

    def _matches(self, term: str, domain: str) -> bool:
        mechanism, _, argument = term.partition(":")
        mechanism, _, cidr = mechanism.partition("/") if not argument else (mechanism, "", "")
        if argument and "/" in argument and mechanism.lower() in ("a", "mx"):
            argument, _, cidr = argument.partition("/")
        kind = mechanism.lower()
        if kind == "all":
            return True
        if kind in ("ip4", "ip6"):
            try:
                return self.ip in ipaddress.ip_network(argument, strict=False)
            except ValueError as exc:
                raise SpfError(f"bad network {argument!r}") from exc
        if kind not in ("a", "mx", "include", "exists", "ptr"):
            raise SpfError(f"unknown mechanism {term!r}")
        self._charge()
        target = argument or domain
        if "%" in target:
            return False  # macros are not expanded: such a term never matches here
        if kind == "include":
            found = self.result(target)
            if found == "none":
                raise SpfError(f"include of {target}, which has no SPF record")
            return found == "pass"
        if kind == "exists":
            return bool(self.lookups.addresses(target))
        if kind == "ptr":
            return False
        hosts = [target] if kind == "a" else [host for _, host in self.lookups.mx(target)[:_MX_LIMIT]]
        return any(self._in(address, cidr) for host in hosts for address in self.lookups.addresses(host))

    def _in(self, address: IpAddress, cidr: str) -> bool:
        if address.version != self.ip.version:
            return False
        if not cidr:
            return address == self.ip
        lengths = cidr.split("//")
        length = lengths[0] if address.version == 4 else (lengths[1] if len(lengths) > 1 else "")
        if not length:
            return address == self.ip
        try:
            return self.ip in ipaddress.ip_network(f"{address}/{length}", strict=False)
        except ValueError as exc:
            raise SpfError(f"bad prefix length {length!r}") from exc


def _smtp_mechanism(smtp_host: str) -> str:
    try:
        address = ipaddress.ip_address(smtp_host)
    except ValueError:
        return f"a:{smtp_host}"
    return f"ip{address.version}:{address}"


def _with_mechanism(record: str, mechanism: str) -> str:
    """``record`` with ``mechanism`` added before its ``all`` term or ``redirect=`` (at the end without either)."""
    terms = record.split()
    for index, term in enumerate(terms[1:], start=1):
        if term.lstrip("+-~?").lower() == "all" or term.lower().startswith("redirect="):
            return " ".join([*terms[:index], mechanism, *terms[index:]])
    return " ".join([*terms, mechanism, "~all"])


def check_spf(lookups: Lookups, domain: str, smtp_host: str) -> Finding:
    """Whether the domain's SPF record passes every address of ``smtp_host``."""
    mechanism = _smtp_mechanism(smtp_host)
    records = spf_records(lookups.txt(domain))
    if not records:
        return Finding(
            "spf",
            Status.MISSING,
            f"{domain} publishes no SPF record.",
            Record(domain, "TXT", f"v=spf1 {mechanism} ~all"),
        )
    if len(records) > 1:
        return Finding(
            "spf",
            Status.WRONG,
            f"{domain} publishes {len(records)} SPF records; receivers then ignore them all. Keep one.",
            Record(domain, "TXT", _with_mechanism(records[0], mechanism)),
        )
    fixed = Record(domain, "TXT", _with_mechanism(records[0], mechanism))
    try:
        addresses = [ipaddress.ip_address(smtp_host)]
    except ValueError:
        addresses = lookups.addresses(smtp_host)
    if not addresses:
        return Finding("spf", Status.WRONG, f"The SMTP host {smtp_host} has no address, so SPF cannot cover it.")
    failing: list[str] = []
    try:
        for address in addresses:
            outcome = SpfEvaluation(lookups, address).result(domain)
            if outcome != "pass":
                failing.append(f"{address} ({outcome})")
    except SpfError as exc:
        return Finding("spf", Status.WRONG, f"The SPF record of {domain} is broken: {exc}.", fixed)
    if failing:
        return Finding(
            "spf",
            Status.WRONG,
            f"The SPF record of {domain} does not cover the SMTP host {smtp_host}: {', '.join(failing)}.",
            fixed,
        )
    return Finding("spf", Status.OK, f"The SPF record of {domain} covers {smtp_host}.")


def dkim_tags(value: str) -> dict[str, str]:
    """The tags of a DKIM key record (``v``, ``k``, ``p``, ...), whitespace removed from the values."""
    tags: dict[str, str] = {}
    for part in value.split(";"):
        name, sep, tag_value = part.partition("=")
        if sep:
            tags[name.strip().lower()] = "".join(tag_value.split())
    return tags


def check_dkim(lookups: Lookups, domain: str, expected: DkimExpectation) -> Finding:
    """Whether the selector's record publishes our public key (skipped when the sender's server signs)."""
    if expected.own_server:
        return Finding("dkim", Status.OK, "The sender's own SMTP server signs its mail; not checked here.")
    if not expected.selector or not expected.public_key:
        return Finding("dkim", Status.MISSING, f"No DKIM key for {domain} yet: generate one (POST .../dkim).")
    name = record_name(expected.selector, domain)
    wanted = Record(name, "TXT", record_value(expected.public_key))
    records = [dkim_tags(t) for t in lookups.txt(name)]
    keys = [tags for tags in records if "p" in tags]
    if not keys:
        return Finding("dkim", Status.MISSING, f"{name} publishes no DKIM key.", wanted)
    if len(keys) > 1:
        return Finding("dkim", Status.WRONG, f"{name} publishes {len(keys)} DKIM keys; keep only ours.", wanted)
    tags = keys[0]
    if tags.get("v", "DKIM1") != "DKIM1" or tags.get("k", "rsa").lower() != "rsa":
        return Finding("dkim", Status.WRONG, f"{name} is not an RSA DKIM1 key record.", wanted)
    if tags["p"] != expected.public_key:
        return Finding("dkim", Status.WRONG, f"{name} publishes another key than Tidewater signs with.", wanted)
    return Finding("dkim", Status.OK, f"{name} publishes the key Tidewater signs with.")


def _organizational(domain: str) -> str | None:
    labels = domain.split(".")
    return ".".join(labels[-2:]) if len(labels) > 2 else None


def check_dmarc(lookups: Lookups, domain: str, *, spf_ok: bool, dkim_ok: bool) -> Finding:
    """Whether a DMARC policy is published (``_dmarc.<domain>``, else the organizational domain's) and would pass."""
    wanted = Record(f"_dmarc.{domain}", "TXT", "v=DMARC1; p=none; adkim=r; aspf=r")
    where = f"_dmarc.{domain}"
    records = [t for t in lookups.txt(where) if t.replace(" ", "").upper().startswith("V=DMARC1")]
    parent = _organizational(domain)
    if not records and parent is not None:
        where = f"_dmarc.{parent}"
        records = [t for t in lookups.txt(where) if t.replace(" ", "").upper().startswith("V=DMARC1")]
    if not records:
        return Finding("dmarc", Status.MISSING, f"{domain} publishes no DMARC policy.", wanted)
    if len(records) > 1:
        return Finding("dmarc", Status.WRONG, f"{where} publishes {len(records)} DMARC records; keep one.", wanted)
    tags = {k: v.lower() for k, v in dkim_tags(records[0]).items()}
    policy = tags.get("sp", tags.get("p")) if where != f"_dmarc.{domain}" else tags.get("p")
    if policy not in ("none", "quarantine", "reject"):
        return Finding("dmarc", Status.WRONG, f"The DMARC record at {where} has no valid policy (p=).", wanted)
    if not (spf_ok or dkim_ok):
        return Finding(
            "dmarc",
            Status.WRONG,
            f"Mail from {domain} would fail DMARC: neither SPF nor DKIM passes for it. Fix those records first.",
        )
    note = " (p=none only monitors; move to quarantine once reports look right)" if policy == "none" else ""
    return Finding("dmarc", Status.OK, f"DMARC policy p={policy} at {where}, aligned with {domain}{note}.")


def check_mx(lookups: Lookups, domain: str, smtp_host: str) -> Finding:
    """Whether the domain receives mail (replies and bounces go there)."""
    try:
        ipaddress.ip_address(smtp_host)
        exchange = f"mail.{domain}"
    except ValueError:
        exchange = smtp_host
    wanted = Record(domain, "MX", f"10 {exchange}.")
    records = lookups.mx(domain)
    if not records:
        return Finding("mx", Status.MISSING, f"{domain} has no MX record: replies to it cannot arrive.", wanted)
    if all(host in ("", ".") for _, host in records):
        return Finding("mx", Status.WRONG, f"{domain} says it receives no mail (null MX): replies bounce.", wanted)
    return Finding("mx", Status.OK, f"{domain} receives mail at {', '.join(h for _, h in sorted(records))}.")


def _guarded(code: str, check: Callable[[], Finding]) -> Finding:
    try:
        return check()
    except LookupFailed as exc:
        return Finding(code, Status.MISSING, f"DNS did not answer: {exc}.")


def preflight(lookups: Lookups, domain: str, smtp_host: str, dkim: DkimExpectation) -> list[Finding]:
    """Every check of a sending domain, in order: SPF, DKIM, DMARC, MX."""
    domain = domain.rstrip(".").lower()
    spf = _guarded("spf", lambda: check_spf(lookups, domain, smtp_host))
    signature = _guarded("dkim", lambda: check_dkim(lookups, domain, dkim))
    dkim_ok = signature.status is Status.OK and not dkim.own_server
    dmarc = _guarded(
        "dmarc",
        lambda: check_dmarc(lookups, domain, spf_ok=spf.status is Status.OK, dkim_ok=dkim_ok or dkim.own_server),
    )
    mx = _guarded("mx", lambda: check_mx(lookups, domain, smtp_host))
    return [spf, signature, dmarc, mx]
