"""IMAP settings on email senders: write-only password, RFC 9457 field errors, mailbox state and resume."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from libs.crypto import SecretBox
from libs.db.session import system_session
from libs.security import Role
from tests.services.brand.conftest import Actor

IMAP_PASSWORD = "imap-Pa55word-that-must-not-leak"
IMAP = {
    "imap_host": "imap.acme.example",
    "imap_username": "jane@acme.example",
    "imap_password": IMAP_PASSWORD,
}


def _mailbox(engine: sa.Engine, sender_id: str) -> Any:
    with engine.connect() as conn:
        return (
            conn.execute(sa.text("SELECT * FROM mailboxes WHERE sender_id = :s"), {"s": sender_id}).mappings().first()
        )


def _pause(engine: sa.Engine, sender_id: str, *, last_uid: int = 7) -> None:
    with system_session(engine) as s:
        s.execute(
            sa.text(
                "UPDATE mailboxes SET state = 'paused', paused_at = now(), uidvalidity = 42, last_uid = :uid,"
                " paused_reason = '[AUTHENTICATIONFAILED] Authentication failed.' WHERE sender_id = :s"
            ),
            {"s": sender_id, "uid": last_uid},
        )


def _errors(response: Any) -> dict[str, str]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    return {e["field"]: e["message"] for e in response.json()["errors"]}


def test_imap_settings_are_stored_with_defaults_and_the_password_only_as_ciphertext(
    alice: Actor, engine: sa.Engine, box: SecretBox
) -> None:
    brand = alice.create_brand()
    sender = alice.create_email_sender(brand["id"], **IMAP)
    assert sender["imap_host"] == "imap.acme.example"
    assert (sender["imap_tls"], sender["imap_port"], sender["imap_folder"]) == ("tls", 993, "INBOX")
    assert sender["imap_password"] == {"set": True, "last4": IMAP_PASSWORD[-4:]}
    assert sender["mailbox"]["state"] == "active"
    assert sender["mailbox"]["paused_reason"] is None
    assert IMAP_PASSWORD not in alice.get(f"/api/brands/{brand['id']}/senders/{sender['id']}").text
    assert IMAP_PASSWORD not in alice.get(f"/api/brands/{brand['id']}/senders").text
    with engine.connect() as conn:
        stored = conn.execute(
            sa.text("SELECT imap_password_encrypted FROM senders WHERE id = :s"), {"s": sender["id"]}
        ).scalar_one()
    assert IMAP_PASSWORD not in stored
    assert box.decrypt(stored) == IMAP_PASSWORD


def test_starttls_defaults_to_port_143(alice: Actor) -> None:
    brand = alice.create_brand()
    sender = alice.create_email_sender(brand["id"], **IMAP, imap_tls="starttls", imap_folder="Replies")
    assert (sender["imap_port"], sender["imap_folder"]) == (143, "Replies")


def test_incomplete_or_misplaced_imap_settings_are_422_naming_each_field(alice: Actor) -> None:
    brand = alice.create_brand()
    path = f"/api/brands/{brand['id']}/senders"
    base = {"kind": "email", "from_address": "jane@acme.example", "smtp_host": "smtp.acme.example"}
    errors = _errors(alice.post(path, {**base, "imap_host": "imap.acme.example"}))
    assert set(errors) == {"imap_username", "imap_password"}
    errors = _errors(alice.post(path, {**base, "imap_port": 993, "imap_username": "jane"}))
    assert set(errors) == {"imap_port", "imap_username"}
    assert "imap_host" in errors["imap_port"]
    errors = _errors(alice.post(path, {**base, **IMAP, "imap_tls": "ssl3"}))
    assert "imap_tls" in errors
    errors = _errors(alice.post(path, {**base, **IMAP, "imap_folder": "In\nbox"}))
    assert "imap_folder" in errors
    errors = _errors(alice.post(path, {"kind": "sms", "phone_number": "+14155550100", "imap_host": "imap.example"}))
    assert errors == {"imap_host": "not used by a sms sender"}


def test_a_paused_mailbox_shows_its_reason_and_a_member_resumes_it_keeping_the_cursor(
    alice: Actor, engine: sa.Engine
) -> None:
    brand = alice.create_brand()
    sender = alice.create_email_sender(brand["id"], **IMAP)
    _pause(engine, sender["id"])
    read = alice.get(f"/api/brands/{brand['id']}/senders/{sender['id']}").json()
    assert read["mailbox"]["state"] == "paused"
    assert "AUTHENTICATIONFAILED" in read["mailbox"]["paused_reason"]
    resume = f"/api/brands/{brand['id']}/senders/{sender['id']}/mailbox/resume"
    assert alice.as_role(Role.VIEWER).post(resume).status_code == 403
    assert _mailbox(engine, sender["id"])["state"] == "paused"
    r = alice.as_role(Role.MEMBER).post(resume)
    assert r.status_code == 200, r.text
    assert r.json()["mailbox"]["state"] == "active"
    assert r.json()["mailbox"]["paused_reason"] is None
    row = _mailbox(engine, sender["id"])
    assert (row["state"], row["paused_at"], row["uidvalidity"], row["last_uid"]) == ("active", None, 42, 7)


def test_resume_of_a_sender_without_a_mailbox_is_422_and_another_org_gets_404(alice: Actor, bob: Actor) -> None:
    brand = alice.create_brand()
    plain = alice.create_email_sender(brand["id"])
    r = alice.post(f"/api/brands/{brand['id']}/senders/{plain['id']}/mailbox/resume")
    assert _errors(r) == {"imap_host": "not set on this sender"}
    assert plain["mailbox"] is None
    reading = alice.create_email_sender(brand["id"], **IMAP)
    assert bob.post(f"/api/brands/{brand['id']}/senders/{reading['id']}/mailbox/resume").status_code == 404


def test_a_new_password_unpauses_the_mailbox_and_a_new_folder_starts_its_cursor_over(
    alice: Actor, engine: sa.Engine
) -> None:
    brand = alice.create_brand()
    sender = alice.create_email_sender(brand["id"], **IMAP)
    url = f"/api/brands/{brand['id']}/senders/{sender['id']}"
    _pause(engine, sender["id"])
    r = alice.patch(url, {"imap_password": "a-better-password"}, headers={"If-Match": f'"v{sender["version"]}"'})
    assert r.status_code == 200, r.text
    assert r.json()["imap_password"] == {"set": True, "last4": "word"}
    row = _mailbox(engine, sender["id"])
    assert (row["state"], row["paused_reason"], row["last_uid"]) == ("active", None, 7)
    r = alice.patch(url, {"imap_folder": "Replies"}, headers={"If-Match": f'"v{r.json()["version"]}"'})
    assert r.status_code == 200, r.text
    row = _mailbox(engine, sender["id"])
    assert (row["folder"], row["uidvalidity"], row["last_uid"]) == ("Replies", None, 0)
    r = alice.patch(url, {"imap_host": None}, headers={"If-Match": f'"v{r.json()["version"]}"'})
    assert r.status_code == 200, r.text
    assert r.json()["mailbox"] is None
    assert _mailbox(engine, sender["id"]) is None
