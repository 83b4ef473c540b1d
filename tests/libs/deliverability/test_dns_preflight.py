"""The DNS preflight of a sending domain against the loopback DNS server: each record missing, wrong or right."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from libs.deliverability import dkim
from libs.deliverability.dns_preflight import (
    DkimExpectation,
    DnsConfig,
    Finding,
    Lookups,
    Record,
    Status,
    check_spf,
    make_resolver,
    preflight,
)
from libs.deliverability.sending_domain import DnsSettings
from tests.support.dns import DnsServer, Zone, dns_server, txt

DOMAIN = "acme.example"
SMTP = "smtp.acme.example"
KEY = dkim.generate().public_key
SELECTOR = "tw202612"
GOOD: Zone = {
    DOMAIN: [txt("v=spf1 a:smtp.acme.example -all"), ("MX", "10 mx.acme.example.")],
    SMTP: [("A", "192.0.2.10")],
    f"{SELECTOR}._domainkey.{DOMAIN}": [txt(dkim.record_value(KEY))],
    f"_dmarc.{DOMAIN}": [txt("v=DMARC1; p=quarantine; rua=mailto:d@acme.example")],
}


@pytest.fixture
def server() -> Iterator[DnsServer]:
    with dns_server(dict(GOOD)) as s:
        yield s


def _lookups(server: DnsServer) -> Lookups:
    return Lookups(make_resolver(DnsConfig(nameservers=(f"127.0.0.1:{server.port}",), timeout=1)))


def _findings(server: DnsServer, dkim_expected: DkimExpectation | None = None) -> dict[str, Finding]:
    expected = dkim_expected or DkimExpectation(SELECTOR, KEY)
    return {f.code: f for f in preflight(_lookups(server), DOMAIN, SMTP, expected)}


def test_a_well_published_domain_is_ok_on_every_check(server: DnsServer) -> None:
    found = _findings(server)
    assert [f.code for f in preflight(_lookups(server), DOMAIN, SMTP, DkimExpectation(SELECTOR, KEY))] == [
        "spf",
        "dkim",
        "dmarc",
        "mx",
    ]
    assert {code: f.status for code, f in found.items()} == dict.fromkeys(("spf", "dkim", "dmarc", "mx"), Status.OK)
    assert all(f.record is None for f in found.values())


def test_no_spf_record_is_missing_and_says_the_record_that_covers_the_smtp_host(server: DnsServer) -> None:
    server.set(DOMAIN, [("MX", "10 mx.acme.example.")])
    spf = _findings(server)["spf"]
    assert spf.status is Status.MISSING
    assert spf.record == Record(DOMAIN, "TXT", "v=spf1 a:smtp.acme.example ~all")


def test_an_spf_record_that_does_not_cover_the_smtp_host_is_wrong_and_the_fix_keeps_its_terms(
    server: DnsServer,
) -> None:
    server.set(DOMAIN, [txt("v=spf1 ip4:198.51.100.0/24 -all"), ("MX", "10 mx.acme.example.")])
    spf = _findings(server)["spf"]
    assert spf.status is Status.WRONG
    assert "192.0.2.10 (fail)" in spf.message
    assert spf.record == Record(DOMAIN, "TXT", "v=spf1 ip4:198.51.100.0/24 a:smtp.acme.example -all")


@pytest.mark.parametrize(
    ("records", "covered"),
    [
        ({DOMAIN: [txt("v=spf1 ip4:192.0.2.0/24 -all")]}, True),
        (
            {
                DOMAIN: [txt("v=spf1 include:_spf.mailer.example -all")],
                "_spf.mailer.example": [txt("v=spf1 ip4:192.0.2.10 -all")],
            },
            True,
        ),
        (
            {DOMAIN: [txt("v=spf1 include:_spf.mailer.example ~all")], "_spf.mailer.example": [txt("v=spf1 -all")]},
            False,
        ),
        ({DOMAIN: [txt("v=spf1 mx -all"), ("MX", "10 smtp.acme.example.")]}, True),
        ({DOMAIN: [txt("v=spf1 a:other.acme.example/24 -all")], "other.acme.example": [("A", "192.0.2.77")]}, True),
        (
            {
                DOMAIN: [txt("v=spf1 redirect=_spf.mailer.example")],
                "_spf.mailer.example": [txt("v=spf1 a:smtp.acme.example -all")],
            },
            True,
        ),
        ({DOMAIN: [txt("v=spf1 ~all")]}, False),
        ({DOMAIN: [txt("v=spf1 -ip4:192.0.2.10 +all")]}, False),
        ({DOMAIN: [txt("v=spf1 ?ip4:192.0.2.10 -all")]}, False),
    ],
)
def test_spf_is_evaluated_through_its_mechanisms(server: DnsServer, records: Zone, covered: bool) -> None:
    for name, value in records.items():
        server.set(name, value)
    assert (check_spf(_lookups(server), DOMAIN, SMTP).status is Status.OK) is covered


def test_more_than_ten_lookups_is_a_broken_spf_record(server: DnsServer) -> None:
    server.set(DOMAIN, [txt("v=spf1 include:s0.acme.example -all")])
    for n in range(12):
        server.set(f"s{n}.acme.example", [txt(f"v=spf1 include:s{n + 1}.acme.example -all")])
    spf = check_spf(_lookups(server), DOMAIN, SMTP)
    assert spf.status is Status.WRONG
    assert "more than 10 DNS lookups" in spf.message


def test_ten_lookups_are_still_allowed(server: DnsServer) -> None:
    server.set(
        DOMAIN, [txt("v=spf1 " + " ".join(f"a:h{n}.acme.example" for n in range(9)) + " a:smtp.acme.example -all")]
    )
    for n in range(9):
        server.set(f"h{n}.acme.example", [("A", f"198.51.100.{n + 1}")])
    assert check_spf(_lookups(server), DOMAIN, SMTP).status is Status.OK


@pytest.mark.parametrize(
    "record", ["v=spf1 a/abc -all", "v=spf1 ip4:300.1.1.1 -all", "v=spf1 frob:x -all", "v=spf1 include:-bad..name -all"]
)
def test_a_malformed_spf_record_is_a_finding_never_an_error(server: DnsServer, record: str) -> None:
    server.set(DOMAIN, [txt(record)])
    spf = check_spf(_lookups(server), DOMAIN, SMTP) if "..name" not in record else None
    if spf is not None:
        assert spf.status is Status.WRONG
    found = {f.code: f for f in preflight(_lookups(server), DOMAIN, SMTP, DkimExpectation(SELECTOR, KEY))}
    assert found["spf"].status is not Status.OK


def test_two_spf_records_are_wrong(server: DnsServer) -> None:
    server.set(DOMAIN, [txt("v=spf1 a:smtp.acme.example -all"), txt("v=spf1 -all")])
    assert check_spf(_lookups(server), DOMAIN, SMTP).status is Status.WRONG


def test_an_ip_literal_smtp_host_is_covered_by_ip4(server: DnsServer) -> None:
    server.set(DOMAIN, [txt("v=spf1 -all")])
    spf = check_spf(_lookups(server), DOMAIN, "192.0.2.10")
    assert spf.status is Status.WRONG
    assert spf.record == Record(DOMAIN, "TXT", "v=spf1 ip4:192.0.2.10 -all")


def test_no_dkim_record_is_missing_and_says_the_record_with_our_key(server: DnsServer) -> None:
    server.set(f"{SELECTOR}._domainkey.{DOMAIN}", None)
    found = _findings(server)["dkim"]
    assert found.status is Status.MISSING
    assert found.record == Record(f"{SELECTOR}._domainkey.{DOMAIN}", "TXT", f"v=DKIM1; k=rsa; p={KEY}")


def test_another_key_under_our_selector_is_wrong(server: DnsServer) -> None:
    server.set(f"{SELECTOR}._domainkey.{DOMAIN}", [txt(dkim.record_value(dkim.generate().public_key))])
    found = _findings(server)["dkim"]
    assert found.status is Status.WRONG
    assert found.record is not None
    assert found.record.value.endswith(KEY)


def test_no_key_yet_is_missing_without_a_record_and_an_own_server_is_not_checked(server: DnsServer) -> None:
    assert _findings(server, DkimExpectation())["dkim"].status is Status.MISSING
    assert _findings(server, DkimExpectation())["dkim"].record is None
    assert _findings(server, DkimExpectation(own_server=True))["dkim"].status is Status.OK


def test_no_dmarc_record_is_missing(server: DnsServer) -> None:
    server.set(f"_dmarc.{DOMAIN}", None)
    found = _findings(server)["dmarc"]
    assert found.status is Status.MISSING
    assert found.record == Record(f"_dmarc.{DOMAIN}", "TXT", "v=DMARC1; p=none; adkim=r; aspf=r")


def test_dmarc_p_none_is_ok_but_says_it_only_monitors(server: DnsServer) -> None:
    server.set(f"_dmarc.{DOMAIN}", [txt("v=DMARC1; p=none")])
    found = _findings(server)["dmarc"]
    assert found.status is Status.OK
    assert "only monitors" in found.message


def test_dmarc_without_a_policy_is_wrong(server: DnsServer) -> None:
    server.set(f"_dmarc.{DOMAIN}", [txt("v=DMARC1; rua=mailto:d@acme.example")])
    assert _findings(server)["dmarc"].status is Status.WRONG


def test_dmarc_fails_when_neither_spf_nor_dkim_passes_for_the_from_domain(server: DnsServer) -> None:
    server.set(DOMAIN, [txt("v=spf1 -all"), ("MX", "10 mx.acme.example.")])
    server.set(f"{SELECTOR}._domainkey.{DOMAIN}", None)
    found = _findings(server)["dmarc"]
    assert found.status is Status.WRONG
    assert "would fail DMARC" in found.message


def test_a_subdomains_dmarc_policy_comes_from_its_organizational_domain(server: DnsServer) -> None:
    sub = "news.acme.example"
    server.set(sub, [txt("v=spf1 a:smtp.acme.example -all"), ("MX", "10 mx.acme.example.")])
    server.set(f"_dmarc.{sub}", None)
    dmarc = {f.code: f for f in preflight(_lookups(server), sub, SMTP, DkimExpectation(own_server=True))}["dmarc"]
    assert dmarc.status is Status.OK
    assert "_dmarc.acme.example" in dmarc.message


def test_no_mx_is_missing_and_a_null_mx_is_wrong(server: DnsServer) -> None:
    server.set(DOMAIN, [txt("v=spf1 a:smtp.acme.example -all")])
    found = _findings(server)["mx"]
    assert found.status is Status.MISSING
    assert found.record == Record(DOMAIN, "MX", "10 smtp.acme.example.")
    server.set(DOMAIN, [txt("v=spf1 a:smtp.acme.example -all"), ("MX", "0 .")])
    assert _findings(server)["mx"].status is Status.WRONG


def test_a_silent_nameserver_is_reported_not_raised(server: DnsServer) -> None:
    lookups = Lookups(make_resolver(DnsConfig(nameservers=(f"127.0.0.1:{server.port}",), timeout=0.3)))
    found = preflight(lookups, "silent.example", SMTP, DkimExpectation(SELECTOR, KEY))
    assert {f.status for f in found} == {Status.MISSING}
    assert "DNS did not answer" in found[0].message


def test_readiness_checks_dns_by_default_only_in_production_unless_told() -> None:
    assert DnsSettings().in_readiness(production=True)
    assert not DnsSettings().in_readiness(production=False)
    assert DnsSettings(dns_preflight=True).in_readiness(production=False)
    assert not DnsSettings(dns_preflight=False).in_readiness(production=True)
    config = DnsSettings(dns_nameservers=["127.0.0.1:5353", "10.0.0.1"], dns_timeout=2).config()
    assert config == DnsConfig(nameservers=("127.0.0.1:5353", "10.0.0.1"), timeout=2)
    servers = make_resolver(config).nameservers
    assert [(s.address, s.port) if not isinstance(s, str) else s for s in servers] == [("127.0.0.1", 5353), "10.0.0.1"]
