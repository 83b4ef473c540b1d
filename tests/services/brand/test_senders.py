"""Senders under a brand, and SMTP verification against real loopback SMTP servers."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.services.brand.conftest import Actor
from tests.support.smtp import SmtpServer, silent_server, unused_port

PASSWORD = "correct-horse-battery-staple"
CREDENTIALS = {"jane@acme.example": PASSWORD}


def _verify(actor: Actor, brand_id: str, sender_id: str) -> Any:
    return actor.post(f"/api/brands/{brand_id}/senders/{sender_id}/verify")


def test_email_sender_shows_its_password_only_as_set_and_last4(alice: Actor) -> None:
    brand = alice.create_brand()
    sender = alice.create_email_sender(brand["id"])
    assert sender["kind"] == "email"
    assert sender["smtp_password"] == {"set": True, "last4": "aple"}
    assert sender["verified_at"] is None
    assert sender["last_verification"] is None
    assert PASSWORD not in str(sender)


def test_email_sender_defaults_port_from_security(alice: Actor) -> None:
    brand = alice.create_brand()
    s = alice.create_sender(
        brand["id"], kind="email", from_address="a@acme.example", smtp_host="smtp.acme.example", smtp_security="tls"
    )
    assert s["smtp_port"] == 465
    assert s["smtp_password"] == {"set": False, "last4": None}


def test_sms_and_voice_senders(alice: Actor) -> None:
    brand = alice.create_brand()
    sms = alice.create_sender(brand["id"], kind="sms", phone_number="+1 (415) 555-2671", daily_limit=500)
    assert sms["phone_number"] == "+14155552671"
    service = alice.create_sender(brand["id"], kind="sms", messaging_service_sid="MG" + "a" * 32)
    assert service["messaging_service_sid"] == "MG" + "a" * 32
    voice = alice.create_sender(
        brand["id"],
        kind="voice",
        phone_number="+442071838750",
        tts_voice="Polly.Joanna",
        audio_url="https://cdn.acme.example/vm.mp3",
    )
    assert voice["phone_number"] == "+442071838750"
    listed = alice.get(f"/api/brands/{brand['id']}/senders").json()["items"]
    assert [s["id"] for s in listed] == [voice["id"], service["id"], sms["id"]]


def test_a_sender_needs_the_fields_of_its_kind_and_no_others(alice: Actor) -> None:
    brand = alice.create_brand()
    path = f"/api/brands/{brand['id']}/senders"
    r = alice.post(path, {"kind": "email", "smtp_username": "u", "phone_number": "+14155552671"})
    assert r.status_code == 422
    fields = {e["field"] for e in r.json()["errors"]}
    assert fields == {"from_address", "smtp_host", "smtp_password", "phone_number"}
    r = alice.post(path, {"kind": "sms"})
    assert {e["field"] for e in r.json()["errors"]} == {"phone_number"}
    r = alice.post(path, {"kind": "voice", "from_address": "x@acme.example"})
    assert {e["field"] for e in r.json()["errors"]} == {"phone_number", "tts_voice", "from_address"}
    r = alice.post(path, {"kind": "fax"})
    assert r.status_code == 422


def test_update_sender_with_if_match_and_new_smtp_settings_clear_verification(alice: Actor) -> None:
    brand = alice.create_brand()
    with SmtpServer(credentials=CREDENTIALS) as smtp:
        sender = alice.create_email_sender(brand["id"], smtp, smtp_security="none")
        verified = _verify(alice, brand["id"], sender["id"])
        assert verified.status_code == 200, verified.text
    path = f"/api/brands/{brand['id']}/senders/{sender['id']}"
    etag = verified.headers["etag"]
    r = alice.patch(path, {"label": "Main", "hourly_limit": 50}, headers={"If-Match": etag})
    assert r.status_code == 200, r.text
    assert r.json()["verified_at"] is not None  # label and limits do not touch how we log in
    assert alice.patch(path, {"label": "Again"}, headers={"If-Match": etag}).status_code == 412
    assert alice.patch(path, {"label": "Again"}).status_code == 428
    r = alice.patch(path, {"smtp_password": "a-brand-new-password"}, headers={"If-Match": r.headers["etag"]})
    assert r.status_code == 200
    assert r.json()["verified_at"] is None
    assert r.json()["smtp_password"] == {"set": True, "last4": "word"}


def test_delete_sender(alice: Actor) -> None:
    brand = alice.create_brand()
    sender = alice.create_sender(brand["id"], kind="sms", phone_number="+14155552671")
    path = f"/api/brands/{brand['id']}/senders/{sender['id']}"
    assert alice.delete(path).status_code == 204
    assert alice.get(path).status_code == 404


def test_a_sender_is_only_found_under_its_own_brand(alice: Actor) -> None:
    one, two = alice.create_brand(name="One"), alice.create_brand(name="Two")
    sender = alice.create_sender(one["id"], kind="sms", phone_number="+14155552671")
    assert alice.get(f"/api/brands/{two['id']}/senders/{sender['id']}").status_code == 404


# verification --------------------------------------------------------------------------------


@pytest.mark.parametrize("security", ["none", "starttls", "tls"])
def test_verify_logs_in_and_records_the_answer(alice: Actor, security: str) -> None:
    brand = alice.create_brand()
    with SmtpServer(credentials=CREDENTIALS, security=security, auth_required=True) as smtp:  # type: ignore[arg-type]
        sender = alice.create_email_sender(brand["id"], smtp, smtp_security=security)
        r = _verify(alice, brand["id"], sender["id"])
        assert r.status_code == 200, r.text
        assert [(a.login, a.success) for a in smtp.auth_attempts] == [("jane@acme.example", True)]
    body = r.json()
    assert body["verified_at"] is not None
    assert body["last_verification"]["verified"] is True
    assert body["last_verification"]["stage"] == "auth"
    assert body["last_verification"]["code"] == 235
    assert body["last_verification"]["server"] == f"127.0.0.1:{smtp.port}"
    stored = alice.get(f"/api/brands/{brand['id']}/senders/{sender['id']}").json()
    assert stored["verified_at"] == body["verified_at"]


def test_verify_reports_a_refused_login(alice: Actor) -> None:
    brand = alice.create_brand()
    with SmtpServer(credentials=CREDENTIALS, refuse_logins=True) as smtp:
        sender = alice.create_email_sender(brand["id"], smtp, smtp_security="none")
        r = _verify(alice, brand["id"], sender["id"])
    assert r.status_code == 422
    problem = r.json()
    assert problem["code"] == "SenderVerificationFailed"
    assert problem["stage"] == "auth"
    assert problem["smtp_code"] == 535
    assert "Authentication credentials invalid" in problem["smtp_reply"]
    assert problem["errors"][0]["field"] == "smtp_password"
    assert PASSWORD not in r.text
    stored = alice.get(f"/api/brands/{brand['id']}/senders/{sender['id']}").json()
    assert stored["verified_at"] is None
    assert stored["last_verification"]["verified"] is False
    assert stored["last_verification"]["code"] == 535


def test_a_failed_verify_clears_an_earlier_success(alice: Actor) -> None:
    brand = alice.create_brand()
    with SmtpServer(credentials=CREDENTIALS) as smtp:
        sender = alice.create_email_sender(brand["id"], smtp, smtp_security="none")
        assert _verify(alice, brand["id"], sender["id"]).status_code == 200
        smtp.refuse_logins = True
        assert _verify(alice, brand["id"], sender["id"]).status_code == 422
    assert alice.get(f"/api/brands/{brand['id']}/senders/{sender['id']}").json()["verified_at"] is None


def test_verify_wants_starttls_when_configured(alice: Actor) -> None:
    brand = alice.create_brand()
    with SmtpServer(credentials=CREDENTIALS, security="none") as smtp:
        sender = alice.create_email_sender(brand["id"], smtp, smtp_security="starttls")
        r = _verify(alice, brand["id"], sender["id"])
    assert r.status_code == 422
    assert r.json()["stage"] == "tls"
    assert "STARTTLS" in r.json()["smtp_reply"]


def test_verify_against_a_server_that_is_down_is_a_clear_502(alice: Actor) -> None:
    brand = alice.create_brand()
    sender = alice.create_email_sender(
        brand["id"], smtp_host="127.0.0.1", smtp_port=unused_port(), smtp_security="none"
    )
    started = time.monotonic()
    r = _verify(alice, brand["id"], sender["id"])
    assert time.monotonic() - started < 3
    assert r.status_code == 502
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == "SmtpUnreachable"
    assert r.json()["stage"] == "connect"
    assert "refused" in r.json()["detail"].lower()


def test_verify_against_a_silent_server_times_out_without_hanging(alice: Actor) -> None:
    brand = alice.create_brand()
    with silent_server() as port:
        sender = alice.create_email_sender(brand["id"], smtp_host="127.0.0.1", smtp_port=port, smtp_security="none")
        started = time.monotonic()
        r = _verify(alice, brand["id"], sender["id"])
        elapsed = time.monotonic() - started
    assert r.status_code == 502
    assert "timed out" in r.json()["detail"]
    assert elapsed < 3  # the configured 1 s timeout, not smtplib's default of forever
    stored = alice.get(f"/api/brands/{brand['id']}/senders/{sender['id']}").json()
    assert stored["last_verification"]["verified"] is False


def test_verify_refuses_private_hosts_when_not_allowed(alice: Actor, client: Any) -> None:
    client.app.state.smtp_check = type(client.app.state.smtp_check)(
        timeout=1.0, ssl_context=client.app.state.smtp_check.ssl_context, allow_private=False
    )
    brand = alice.create_brand()
    with SmtpServer(credentials=CREDENTIALS) as smtp:
        sender = alice.create_email_sender(brand["id"], smtp, smtp_security="none")
        r = _verify(alice, brand["id"], sender["id"])
        assert smtp.connections == 0
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "smtp_host"


def test_only_email_senders_can_be_verified(alice: Actor) -> None:
    brand = alice.create_brand()
    sender = alice.create_sender(brand["id"], kind="sms", phone_number="+14155552671")
    assert _verify(alice, brand["id"], sender["id"]).status_code == 422
