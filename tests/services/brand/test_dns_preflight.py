"""DKIM keys per sending domain and the DNS preflight of a sender, through the brand API and readiness.

The sender's domain lives on the loopback DNS server; every missing or wrong record is a
finding of ``GET .../dns`` with the record to publish, and a warning of readiness.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import dkim as dkimpy
import pytest
import sqlalchemy as sa
from litestar.testing import TestClient

from libs.crypto import SecretBox
from libs.db.models.deliverability import DkimKey
from libs.db.session import system_session
from libs.deliverability import dkim
from libs.deliverability.dns_preflight import DnsConfig
from libs.deliverability.sending_domain import READINESS_BUDGET
from services.brand.app import create_app
from services.brand.service import SmtpCheckSettings
from services.brand.settings import BrandSettings
from tests.services.brand.conftest import Actor
from tests.support.dns import DnsServer, Zone, dns_server, txt
from tests.support.tokens import TokenSigner

DOMAIN = "acme.example"
SMTP_HOST = "smtp.acme.example"
BASE_ZONE: Zone = {
    DOMAIN: [txt("v=spf1 a:smtp.acme.example -all"), ("MX", "10 mx.acme.example.")],
    SMTP_HOST: [("A", "192.0.2.10")],
    f"_dmarc.{DOMAIN}": [txt("v=DMARC1; p=reject")],
}


@pytest.fixture
def dns() -> Iterator[DnsServer]:
    with dns_server(dict(BASE_ZONE)) as server:
        yield server


@pytest.fixture
def client(
    brand_settings: BrandSettings, signer: TokenSigner, smtp_check: SmtpCheckSettings, dns: DnsServer
) -> Iterator[TestClient]:  # type: ignore[type-arg]
    config = DnsConfig(nameservers=(f"127.0.0.1:{dns.port}",), timeout=1)
    with TestClient(create_app(brand_settings, verifier=signer.verifier(), smtp_check=smtp_check, dns=config)) as c:
        yield c


def _sender(alice: Actor) -> tuple[str, str]:
    brand = alice.create_brand()
    sender = alice.create_email_sender(brand["id"], smtp_host=SMTP_HOST)
    return brand["id"], sender["id"]


def _publish(dns: DnsServer, body: dict[str, Any]) -> None:
    dns.set(body["record"]["name"], [txt(body["record"]["value"])])


def _findings(alice: Actor, brand_id: str, sender_id: str) -> dict[str, dict[str, Any]]:
    r = alice.get(f"/api/brands/{brand_id}/senders/{sender_id}/dns")
    assert r.status_code == 200, r.text
    return {f["code"]: f for f in r.json()["findings"]}


def _dns_warnings(alice: Actor, brand_id: str) -> dict[str, str]:
    body = alice.get(f"/api/brands/{brand_id}/readiness").json()
    return {g["code"]: g["message"] for g in body["channels"]["email"]["warnings"] if g["code"].startswith("dns_")}


def test_a_key_is_generated_for_the_senders_domain_and_its_record_answered(alice: Actor, engine: sa.Engine) -> None:
    brand_id, sender_id = _sender(alice)
    r = alice.post(f"/api/brands/{brand_id}/senders/{sender_id}/dkim")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["domain"] == DOMAIN
    assert body["signed_by"] == "tidewater"
    assert body["selector"].startswith("tw20")
    assert body["record"]["name"] == f"{body['selector']}._domainkey.{DOMAIN}"
    assert body["record"]["type"] == "TXT"
    assert body["record"]["value"].startswith("v=DKIM1; k=rsa; p=")
    assert alice.get(f"/api/brands/{brand_id}/senders/{sender_id}/dkim").json() == body
    with system_session(engine) as s:
        row = s.execute(sa.select(DkimKey).where(DkimKey.org_id == alice.org_id)).scalar_one()
    assert "PRIVATE KEY" not in row.private_key_encrypted
    private = dkim.unseal(SecretBox(["brand-tests-secret-key"]), alice.org_id, DOMAIN, row.private_key_encrypted)
    signed = dkim.sign(b"From: jane@acme.example\r\nSubject: x\r\n\r\nhi\r\n", DOMAIN, row.selector, private)
    assert dkimpy.verify(signed, dnsfunc=lambda name, timeout=5: body["record"]["value"].encode())


def test_the_domains_senders_share_its_key_until_a_rotation_gives_a_new_selector(alice: Actor) -> None:
    brand_id, sender_id = _sender(alice)
    other = alice.create_email_sender(brand_id, smtp_host=SMTP_HOST, from_address="sam@acme.example")["id"]
    first = alice.post(f"/api/brands/{brand_id}/senders/{sender_id}/dkim").json()
    again = alice.post(f"/api/brands/{brand_id}/senders/{sender_id}/dkim", {"signed_by": "tidewater"}).json()
    shared = alice.post(f"/api/brands/{brand_id}/senders/{other}/dkim").json()
    assert again["record"] == first["record"] == shared["record"]
    rotated = alice.post(f"/api/brands/{brand_id}/senders/{sender_id}/dkim", {"rotate": True}).json()
    assert first["previous_selector"] is None
    assert rotated["previous_selector"] == first["selector"]  # it still signs for a while: keep its record
    assert rotated["selector"] != first["selector"]
    assert rotated["record"]["value"] != first["record"]["value"]
    assert alice.get(f"/api/brands/{brand_id}/senders/{other}/dkim").json()["record"] == rotated["record"]


def test_a_sender_whose_own_server_signs_gets_no_key_and_no_dkim_check(alice: Actor, dns: DnsServer) -> None:
    brand_id, sender_id = _sender(alice)
    r = alice.post(f"/api/brands/{brand_id}/senders/{sender_id}/dkim", {"signed_by": "own_server"})
    assert r.status_code == 200, r.text
    assert r.json()["signed_by"] == "own_server"
    assert r.json()["record"] is None
    assert _findings(alice, brand_id, sender_id)["dkim"]["status"] == "ok"


def test_bad_dkim_requests_name_the_field(alice: Actor) -> None:
    brand = alice.create_brand()
    sms = alice.create_sender(brand["id"], kind="sms", phone_number="+14155552671")
    r = alice.post(f"/api/brands/{brand['id']}/senders/{sms['id']}/dkim")
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "kind"
    assert alice.get(f"/api/brands/{brand['id']}/senders/{sms['id']}/dns").status_code == 422
    brand_id, sender_id = _sender(alice)
    r = alice.post(f"/api/brands/{brand_id}/senders/{sender_id}/dkim", {"signed_by": "somebody"})
    assert r.status_code in (400, 422)
    assert "signed_by" in r.text
    assert alice.post(f"/api/brands/{brand_id}/senders/{uuid.uuid4()}/dkim").status_code == 404


def test_another_organization_cannot_touch_the_senders_key(alice: Actor, bob: Actor) -> None:
    brand_id, sender_id = _sender(alice)
    assert bob.post(f"/api/brands/{brand_id}/senders/{sender_id}/dkim").status_code == 404
    assert bob.get(f"/api/brands/{brand_id}/senders/{sender_id}/dns").status_code == 404


def test_a_fully_published_domain_has_no_dns_warning(alice: Actor, dns: DnsServer) -> None:
    brand_id, sender_id = _sender(alice)
    _publish(dns, alice.post(f"/api/brands/{brand_id}/senders/{sender_id}/dkim").json())
    r = alice.get(f"/api/brands/{brand_id}/senders/{sender_id}/dns")
    assert r.json()["ok"] is True
    assert {f["status"] for f in r.json()["findings"]} == {"ok"}
    assert _dns_warnings(alice, brand_id) == {}


BREAKS: list[tuple[str, str, list[tuple[str, str]] | None, str, str]] = [
    ("spf_missing", DOMAIN, [("MX", "10 mx.acme.example.")], "dns_spf", "missing"),
    (
        "spf_not_covering",
        DOMAIN,
        [txt("v=spf1 ip4:198.51.100.1 -all"), ("MX", "10 mx.acme.example.")],
        "dns_spf",
        "wrong",
    ),
    ("dmarc_missing", f"_dmarc.{DOMAIN}", None, "dns_dmarc", "missing"),
    ("dmarc_without_policy", f"_dmarc.{DOMAIN}", [txt("v=DMARC1; rua=mailto:d@acme.example")], "dns_dmarc", "wrong"),
    ("mx_missing", DOMAIN, [txt("v=spf1 a:smtp.acme.example -all")], "dns_mx", "missing"),
]


@pytest.mark.parametrize(("case", "name", "records", "code", "status"), BREAKS, ids=[b[0] for b in BREAKS])
def test_each_missing_or_wrong_record_is_a_finding_and_a_readiness_warning_with_the_record(
    alice: Actor, dns: DnsServer, case: str, name: str, records: list[tuple[str, str]] | None, code: str, status: str
) -> None:
    brand_id, sender_id = _sender(alice)
    _publish(dns, alice.post(f"/api/brands/{brand_id}/senders/{sender_id}/dkim").json())
    dns.set(name, records)
    findings = _findings(alice, brand_id, sender_id)
    finding = findings[code.removeprefix("dns_")]
    assert finding["status"] == status, case
    assert {c for c, f in findings.items() if f["status"] != "ok"} == {code.removeprefix("dns_")}
    warnings = _dns_warnings(alice, brand_id)
    assert set(warnings) == {code}
    if finding["record"] is not None:
        record = finding["record"]
        assert f"Publish {record['type']} {record['name']}: {record['value']}" in warnings[code]


def test_dmarc_p_none_is_ok(alice: Actor, dns: DnsServer) -> None:
    brand_id, sender_id = _sender(alice)
    _publish(dns, alice.post(f"/api/brands/{brand_id}/senders/{sender_id}/dkim").json())
    dns.set(f"_dmarc.{DOMAIN}", [txt("v=DMARC1; p=none")])
    assert _findings(alice, brand_id, sender_id)["dmarc"]["status"] == "ok"
    assert _dns_warnings(alice, brand_id) == {}


def test_no_key_yet_and_a_key_not_published_are_dkim_missing(alice: Actor, dns: DnsServer) -> None:
    brand_id, sender_id = _sender(alice)
    found = _findings(alice, brand_id, sender_id)["dkim"]
    assert found["status"] == "missing"
    assert found["record"] is None
    assert "POST .../dkim" in _dns_warnings(alice, brand_id)["dns_dkim"]
    key = alice.post(f"/api/brands/{brand_id}/senders/{sender_id}/dkim").json()
    dns.set(key["record"]["name"], None)  # NXDOMAIN: nothing published under the selector
    found = _findings(alice, brand_id, sender_id)["dkim"]
    assert found["status"] == "missing"
    assert found["record"] == key["record"]


def test_a_mismatched_dkim_key_is_wrong_until_the_new_record_is_published(alice: Actor, dns: DnsServer) -> None:
    brand_id, sender_id = _sender(alice)
    key = alice.post(f"/api/brands/{brand_id}/senders/{sender_id}/dkim").json()
    dns.set(key["record"]["name"], [txt(dkim.record_value(dkim.generate().public_key))])
    found = _findings(alice, brand_id, sender_id)["dkim"]
    assert found["status"] == "wrong"
    assert found["record"] == key["record"]
    assert set(_dns_warnings(alice, brand_id)) == {"dns_dkim"}
    _publish(dns, key)
    assert _findings(alice, brand_id, sender_id)["dkim"]["status"] == "ok"


def test_readiness_checks_no_dns_unless_the_process_does(
    alice: Actor, dns: DnsServer, brand_settings: BrandSettings, signer: TokenSigner, smtp_check: SmtpCheckSettings
) -> None:
    brand_id, _ = _sender(alice)
    with TestClient(create_app(brand_settings, verifier=signer.verifier(), smtp_check=smtp_check)) as plain:
        body = plain.get(f"/api/brands/{brand_id}/readiness", headers=alice.headers()).json()
    assert not [g for g in body["channels"]["email"]["warnings"] if g["code"].startswith("dns_")]
    assert dns.queries[DOMAIN] == 0


def test_readiness_waits_for_a_silent_dns_only_its_budget(
    alice: Actor, brand_settings: BrandSettings, signer: TokenSigner, smtp_check: SmtpCheckSettings
) -> None:
    brand_id, _ = _sender(alice)
    with dns_server({}) as silent:  # knows no name: every question times out
        # Each question alone would wait 10 s: only the readiness budget can answer well before that.
        config = DnsConfig(nameservers=(f"127.0.0.1:{silent.port}",), timeout=10)
        app = create_app(brand_settings, verifier=signer.verifier(), smtp_check=smtp_check, dns=config)
        with TestClient(app) as client:
            started = time.monotonic()
            body = client.get(f"/api/brands/{brand_id}/readiness", headers=alice.headers()).json()
            elapsed = time.monotonic() - started
    assert elapsed < READINESS_BUDGET + 4.0  # slack for a loaded machine, still far below one question
    warnings = {g["code"]: g["message"] for g in body["channels"]["email"]["warnings"]}
    assert "GET .../dns" in warnings["dns_unchecked"]
    assert not [code for code in warnings if code.startswith("dns_") and code != "dns_unchecked"]


def test_the_private_key_never_appears_in_a_response_or_a_log_line(
    alice: Actor,
    dns: DnsServer,
    engine: sa.Engine,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    brand_id, sender_id = _sender(alice)
    bodies = [alice.post(f"/api/brands/{brand_id}/senders/{sender_id}/dkim", {"rotate": True}).text for _ in range(2)]
    bodies.append(alice.get(f"/api/brands/{brand_id}/senders/{sender_id}/dkim").text)
    bodies.append(alice.get(f"/api/brands/{brand_id}/senders/{sender_id}/dns").text)
    bodies.append(alice.get(f"/api/brands/{brand_id}/readiness").text)
    with system_session(engine) as s:
        row = s.execute(sa.select(DkimKey).where(DkimKey.org_id == alice.org_id)).scalar_one()
    private = dkim.unseal(SecretBox(["brand-tests-secret-key"]), alice.org_id, DOMAIN, row.private_key_encrypted)
    body_lines = [line for line in private.splitlines() if "PRIVATE KEY" not in line]
    captured = capsys.readouterr()
    logs = captured.out + captured.err + caplog.text
    assert "dkim_key_generated" in logs  # the logs were captured
    for text in (*bodies, logs):
        assert "PRIVATE KEY" not in text
        assert not any(line in text for line in body_lines)
        assert row.private_key_encrypted not in text
