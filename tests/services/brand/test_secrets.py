"""Secrets: only ciphertext in the database, never in a response or a log line."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from libs.crypto import SecretBox
from libs.db.session import system_session
from tests.services.brand.conftest import Actor
from tests.services.brand.test_credentials import ACCOUNT_SID, AUTH_TOKEN, OPENAI_KEY
from tests.support.smtp import SmtpServer

SMTP_PASSWORD = "smtp-Pa55word-that-must-not-leak"
SECRETS = (SMTP_PASSWORD, AUTH_TOKEN, OPENAI_KEY)


def _exercise_everything(alice: Actor) -> list[str]:
    """Create, read, update, list and verify every secret-bearing resource; return every response body."""
    bodies: list[str] = []
    brand = alice.create_brand()
    with SmtpServer(credentials={"jane@acme.example": SMTP_PASSWORD}) as ok, SmtpServer(refuse_logins=True) as bad:
        for smtp in (ok, bad):
            r = alice.post(
                f"/api/brands/{brand['id']}/senders",
                {
                    "kind": "email",
                    "from_address": "jane@acme.example",
                    "smtp_host": smtp.host,
                    "smtp_port": smtp.port,
                    "smtp_security": "none",
                    "smtp_username": "jane@acme.example",
                    "smtp_password": SMTP_PASSWORD,
                },
            )
            bodies.append(r.text)
            sid = r.json()["id"]
            bodies.append(alice.post(f"/api/brands/{brand['id']}/senders/{sid}/verify").text)
            bodies.append(alice.get(f"/api/brands/{brand['id']}/senders/{sid}").text)
    bodies.append(alice.get(f"/api/brands/{brand['id']}/senders").text)
    r = alice.post("/api/credentials", {"provider": "twilio", "account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN})
    bodies.append(r.text)
    twilio_path = f"/api/credentials/{r.json()['id']}"
    r = alice.patch(twilio_path, {"auth_token": AUTH_TOKEN}, headers={"If-Match": '"v1"'})
    bodies.append(r.text)
    bodies.append(alice.post("/api/credentials", {"provider": "openai", "api_key": OPENAI_KEY}).text)
    bodies.append(alice.get("/api/credentials").text)
    bodies.append(alice.get(twilio_path).text)
    # A bad secret echoed back in a validation error would leak it too.
    bodies.append(alice.post("/api/credentials", {"provider": "openai", "api_key": OPENAI_KEY + " \n"}).text)
    return bodies


def test_no_response_or_log_line_contains_a_secret(
    alice: Actor, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    bodies = _exercise_everything(alice)
    captured = capsys.readouterr()
    logs = captured.out + captured.err + caplog.text
    assert "sender_verification" in logs  # the logs were captured
    for secret in SECRETS:
        for body in bodies:
            assert secret not in body
        assert secret not in logs
        assert secret[-8:] not in logs


def test_the_database_holds_only_ciphertext(alice: Actor, engine: sa.Engine, box: SecretBox) -> None:
    _exercise_everything(alice)
    with system_session(engine) as s:
        conn = s.connection()
        dump = "\n".join(
            str(tuple(row))
            for table in ("brands", "senders", "provider_credentials")
            for row in conn.execute(sa.text(f"SELECT * FROM {table}"))
        )
        passwords = conn.execute(sa.text("SELECT smtp_password_encrypted FROM senders")).scalars().all()
        tokens = dict(conn.execute(sa.text("SELECT provider, secret_encrypted FROM provider_credentials")).all())
    for secret in SECRETS:
        assert secret not in dump
    # ...and that ciphertext opens with the service's key to exactly what was sent (what the worker relies on).
    assert passwords
    assert all(box.decrypt(p) == SMTP_PASSWORD for p in passwords)
    assert len(set(passwords)) == len(passwords)  # a fresh nonce each time
    assert box.decrypt(tokens["twilio"]) == AUTH_TOKEN
    assert box.decrypt(tokens["openai"]) == OPENAI_KEY
