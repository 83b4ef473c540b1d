"""Inbound events about an erased lead: nothing personal is stored, logged or sent on.

A lead is created and erased through the campaign API; then the person answers anyway, by
every way in: an email reply (``In-Reply-To`` our message), a DSN bounce naming the address,
Twilio status callbacks for the SMS and for a message we do not know (signed by the real
``RequestValidator``), an inbound SMS reply and a STOP. The real hooks store them and a
real RQ worker runs their jobs; then every text-like column of every table and every Redis
value is scanned for the person's email, phone and names (``tests/support/pii.py``).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from litestar.testing import TestClient
from redis import Redis
from sqlalchemy import Engine

from libs.crypto import SecretBox
from libs.db.models.campaign import Enrollment
from libs.db.session import system_session
from libs.settings import Environment
from libs.suppression import hash_key, suppressed_clause
from services.campaign.app import create_app
from services.campaign.inbound import jobs
from services.campaign.inbound.settings import InboundSettings
from services.campaign.settings import CampaignSettings
from tests.services.campaign.inbound.conftest import EMAIL_SECRET
from tests.services.campaign.inbound.factories import (
    ACCOUNT_SID,
    SMS_NUMBER,
    World,
    add_message,
    create_world,
    one,
    rows,
)
from tests.services.campaign.inbound.receiver import Receiver, receiver
from tests.services.campaign.inbound.test_twilio import signed_post
from tests.services.campaign.leads.conftest import Actor
from tests.support.pii import Person, leaked, scan_database, scan_redis
from tests.support.tokens import TokenSigner

SECRET_KEY = "inbound-erasure-tests-secret"
PERSON = Person(
    email="Ottilie.Brandvold@example.com", phone="+12125550147", first_name="Ottilie", last_name="Brandvold"
)
SMS_SID = "SM" + "5" * 32
UNKNOWN_SID = "SM" + "6" * 32
EVENT_TYPES = ["sent", "delivered", "replied", "bounced", "unsubscribed", "failed"]
STOPPED = "Acme Analytics: You are unsubscribed and will receive no more messages. Reply START to resubscribe."
TABLES = ("leads", "messages", "message_events", "inbound_events", "suppressions", "webhook_deliveries")
EMAIL_PATH = "/hooks/email/inbound"
EMAIL_HEADERS = {"Content-Type": "message/rfc822", "X-Inbound-Secret": EMAIL_SECRET}


@dataclass
class Erased:
    """An organization whose lead (the person) has been erased, with the ledger rows sent to it before."""

    actor: Actor
    world: World
    lead_id: uuid.UUID
    email_message: uuid.UUID
    sms_message: uuid.UUID
    hooks: Receiver


@pytest.fixture
def campaign_settings(
    inbound_settings: InboundSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> CampaignSettings:
    """The whole campaign service's settings; its jobs read the same secret key from the environment."""
    monkeypatch.setenv("SDR_SECRET_KEY", SECRET_KEY)
    monkeypatch.setenv("SDR_WEBHOOKS_ALLOW_PRIVATE", "true")
    return CampaignSettings(
        env=Environment.TEST,
        database_url=inbound_settings.database_url,
        redis_url=inbound_settings.redis_url,
        data_dir=tmp_path,
        secret_key=SECRET_KEY,  # type: ignore[arg-type]
    )


@pytest.fixture
def app(campaign_settings: CampaignSettings, signer: TokenSigner) -> Iterator[TestClient]:  # type: ignore[type-arg]
    """The campaign service (leads API and inbound hooks in one app)."""
    with TestClient(create_app(campaign_settings, verifier=signer.verifier())) as client:
        yield client
    jobs.dispose()


@pytest.fixture
def erased(
    app: TestClient,  # type: ignore[type-arg]
    signer: TokenSigner,
    engine: Engine,
    campaign_settings: CampaignSettings,
) -> Iterator[Erased]:
    """The person as a lead with a sent email and SMS and a customer webhook for every event; then erased."""
    world = create_world(engine, SecretBox.from_settings(campaign_settings))
    actor = Actor(app, signer, world.org_id)
    lead = actor.create_lead(
        email=PERSON.email,
        phone="(212) 555-0147",
        first_name=PERSON.first_name,
        last_name=PERSON.last_name,
        consent_sms=True,
        consent_source="form",
    )
    lead_id = uuid.UUID(lead["id"])
    with system_session(engine) as s:
        enrollment = Enrollment(org_id=world.org_id, campaign_id=world.campaign_id, lead_id=lead_id)
        s.add(enrollment)
        s.flush()
        world.lead_ids.append(lead_id)
        world.enrollment_ids.append(enrollment.id)
    sent = {"subject": f"An idea for {PERSON.first_name}", "body": f"Hi {PERSON.first_name} {PERSON.last_name}"}
    email_message = add_message(engine, world, lead=1, step=0, provider_message_id=f"<{uuid.uuid4()}@x>", **sent)
    sms_message = add_message(engine, world, lead=1, step=1, provider_message_id=SMS_SID, body=sent["body"])
    with receiver() as hooks:
        r = actor.post(
            "/api/webhooks",
            {"url": hooks.url, "event_types": EVENT_TYPES},
        )
        assert r.status_code == 201, r.text
        assert set(scan_database(engine, PERSON, tables=TABLES)) >= {"leads", "messages"}

        assert actor.delete(f"/api/leads/{lead_id}").status_code == 204
        assert scan_database(engine, PERSON) == {}
        yield Erased(actor, world, lead_id, email_message, sms_message, hooks)


# --------------------------------------------------------------------------- what the person sends


def reply_mime(message_id: uuid.UUID) -> bytes:
    """A reply from the person's mail client; its Message-ID is built from their name, as some clients do."""
    return (
        f"Message-ID: <{PERSON.first_name.lower()}.{PERSON.last_name.lower()}.1@example.com>\r\n"
        f"From: {PERSON.first_name} {PERSON.last_name} <{PERSON.email}>\r\n"
        "To: Sam <sam@acme.example>\r\n"
        f"Subject: Re: An idea for {PERSON.first_name}\r\n"
        f"In-Reply-To: <{message_id}@acme.example>\r\n"
        f"References: <{message_id}@acme.example>\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=UTF-8\r\n"
        "\r\n"
        f"Thanks! {PERSON.first_name} here, call me on +1 212 555 0147.\r\n"
    ).encode()


def dsn_mime(message_id: uuid.UUID) -> bytes:
    """An RFC 3464 hard bounce whose recipient and diagnostic name the person's address."""
    address = PERSON.email.lower()
    return (
        "From: MAILER-DAEMON@mx.acme.example (Mail Delivery System)\r\n"
        "To: sam@acme.example\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        "Message-Id: <20261123150102.4B1F32C0999@mx.acme.example>\r\n"
        "Auto-Submitted: auto-replied\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b0"\r\n'
        "\r\n"
        "--b0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "\r\n"
        f"<{address}>: host mx.example.com said: 550 5.1.1 <{address}>: User unknown\r\n"
        "\r\n"
        "--b0\r\n"
        "Content-Type: message/delivery-status\r\n"
        "\r\n"
        "Reporting-MTA: dns; mx.acme.example\r\n"
        "\r\n"
        f"Final-Recipient: rfc822; {PERSON.email}\r\n"
        "Action: failed\r\n"
        "Status: 5.1.1\r\n"
        f"Diagnostic-Code: smtp; 550 5.1.1 <{address}>: Recipient address rejected\r\n"
        "\r\n"
        "--b0\r\n"
        "Content-Type: text/rfc822-headers\r\n"
        "\r\n"
        f"Message-ID: <{message_id}@acme.example>\r\n"
        f"To: {PERSON.first_name} {PERSON.last_name} <{PERSON.email}>\r\n"
        f"Subject: An idea for {PERSON.first_name}\r\n"
        "\r\n"
        "--b0--\r\n"
    ).encode()


def text(client: TestClient, sid: str, body: str) -> Any:  # type: ignore[type-arg]
    """An inbound SMS from the person's number, signed as Twilio signs it."""
    params = {"AccountSid": ACCOUNT_SID, "MessageSid": sid, "SmsSid": sid, "From": PERSON.phone, "To": SMS_NUMBER}
    return signed_post(client, "/hooks/twilio/sms/inbound", {**params, "Body": body})


def status(client: TestClient, sid: str, state: str) -> Any:  # type: ignore[type-arg]
    """A Twilio message status callback for ``sid``, naming the person's number, signed as Twilio signs it."""
    params = {"AccountSid": ACCOUNT_SID, "MessageSid": sid, "SmsSid": sid, "MessageStatus": state}
    return signed_post(client, "/hooks/twilio/messages/status", {**params, "To": PERSON.phone, "From": SMS_NUMBER})


def send_everything(client: TestClient, erased: Erased) -> dict[str, Any]:  # type: ignore[type-arg]
    """Every kind of inbound event the person can cause after the erasure; return the hooks' answers."""
    return {
        "reply": client.post(EMAIL_PATH, content=reply_mime(erased.email_message), headers=EMAIL_HEADERS),
        "reply_again": client.post(EMAIL_PATH, content=reply_mime(erased.email_message), headers=EMAIL_HEADERS),
        "bounce": client.post(EMAIL_PATH, content=dsn_mime(erased.email_message), headers=EMAIL_HEADERS),
        "delivered": status(client, SMS_SID, "delivered"),
        "unknown": status(client, UNKNOWN_SID, "undelivered"),
        "sms_reply": text(client, "SMin" + "1" * 30, f"Sure, {PERSON.first_name} here: {PERSON.email}"),
        "stop": text(client, "SMin" + "2" * 30, "STOP"),
        "stop_again": text(client, "SMin" + "2" * 30, "STOP"),
    }


# --------------------------------------------------------------------------- tests


def test_nothing_the_person_sends_after_erasure_is_stored_logged_or_sent_to_a_webhook(
    app: TestClient,  # type: ignore[type-arg]
    erased: Erased,
    engine: Engine,
    redis: Redis,
    run_inbound: Callable[[], int],
    capsys: pytest.CaptureFixture[str],
) -> None:
    capsys.readouterr()
    answers = send_everything(app, erased)
    assert {name: r.status_code for name, r in answers.items()} == {
        "reply": 202,
        "reply_again": 202,
        "bounce": 202,
        "delivered": 200,
        "unknown": 200,
        "sms_reply": 200,
        "stop": 200,
        "stop_again": 200,
    }
    # The reply's dedupe key is hashed as the erasure hashes it, and still dedupes.
    assert answers["reply_again"].json()["status"] == "duplicate"
    assert run_inbound() == 4  # the reply, the bounce and both status callbacks

    assert scan_database(engine, PERSON, tables=TABLES) == {}
    assert scan_redis(redis, PERSON) == []
    logged = capsys.readouterr().err
    assert "sms_inbound" in logged
    assert leaked(logged, PERSON) == []
    for name, answer in answers.items():
        assert leaked(answer.text, PERSON) == [], name

    events = rows(engine, "SELECT source, dedupe_key, payload, raw FROM inbound_events ORDER BY received_at")
    assert sorted(e.source for e in events) == [
        "email",
        "email",
        "twilio_message_status",
        "twilio_message_status",
        "twilio_sms",
        "twilio_sms",
    ]
    assert all(e.payload.get("erased") is True and e.raw is None for e in events)
    assert all(e.dedupe_key.startswith("erased:") for e in events if e.source == "email")
    for e in events:
        assert not {"From", "To", "Body"} & set(e.payload.get("params", {}))
        assert "subject" not in e.payload

    # No customer endpoint is told anything about the person, now or on a retry.
    assert one(engine, "SELECT count(*) FROM webhook_deliveries") == 0
    assert erased.hooks.requests == []
    # A reply is not recorded as an event of the erased lead; what the ledger needs is, as a tombstone.
    recorded = rows(engine, "SELECT type, data FROM message_events WHERE lead_id = :l", l=erased.lead_id)
    assert sorted(t for t, _ in recorded) == ["bounced", "delivered"]
    assert all(data.get("erased") is True and "text" not in data and "diagnostic" not in data for _, data in recorded)


def test_the_ledger_moves_and_a_stop_gets_its_one_confirmation_while_the_hash_keeps_the_person_suppressed(
    app: TestClient,  # type: ignore[type-arg]
    erased: Erased,
    engine: Engine,
    run_inbound: Callable[[], int],
) -> None:
    answers = send_everything(app, erased)
    start = text(app, "SMin" + "3" * 30, "START")
    run_inbound()

    # Delivery states still reach the tombstoned messages; the bounce keeps its code, not its diagnostic.
    messages = {
        r.id: r
        for r in rows(
            engine,
            "SELECT id, status, error_code, error_detail, subject, body FROM messages WHERE lead_id = :l",
            l=erased.lead_id,
        )
    }
    assert (messages[erased.sms_message].status, messages[erased.sms_message].body) == ("delivered", None)
    bounced = messages[erased.email_message]
    assert (bounced.status, bounced.error_code, bounced.error_detail, bounced.subject) == (
        "bounced",
        "dsn_5.1.1",
        None,
        None,
    )

    # STOP gets exactly one confirmation; Twilio's retry of the same text gets none; START resubscribes nobody.
    confirmations = re.findall(r"<Message>(.*?)</Message>", answers["stop"].text)
    assert confirmations == [
        "Acme Analytics: You are unsubscribed and will receive no more messages. Reply START to resubscribe."
    ]
    assert "<Message>" not in answers["stop_again"].text
    assert "<Message>" not in answers["sms_reply"].text
    assert (start.status_code, "<Message>" in start.text) == (200, False)
    outcomes = dict(rows(engine, "SELECT dedupe_key, outcome FROM inbound_events WHERE source = 'twilio_sms'"))
    assert outcomes == {"SMin" + "1" * 30: "erased", "SMin" + "2" * 30: "opt_out", "SMin" + "3" * 30: "erased"}

    # The opt-out is in effect through the erasure's hashes alone: no clear-text entry was written.
    assert rows(engine, "SELECT kind, channel, reason FROM suppressions") == [("hash", "all", "erasure")] * 2
    # The worker's gate (the same SQL) blocks the number and the address on every channel, and no one else.
    person = [(None, PERSON.phone), (PERSON.email.lower(), None)]
    stranger = ("someone.else@example.com", "+12125550148")
    candidate = sa.values(
        sa.column("email_normalized", sa.String), sa.column("phone", sa.String), name="candidate"
    ).data([*person, stranger])
    key = hash_key(SECRET_KEY)
    with engine.connect() as conn:
        for channel in ("sms", "voicemail", "email"):
            gate = suppressed_clause(org_id=erased.world.org_id, channel=channel, key=key, leads=candidate)
            blocked = conn.execute(sa.select(candidate.c.email_normalized, candidate.c.phone).where(gate)).all()
            assert sorted(map(tuple, blocked), key=str) == sorted(person, key=str), channel
    r = erased.actor.post("/api/leads", {"phone": "212-555-0147"})
    assert (r.status_code, r.json()["code"]) == (409, "ContactErased")
    # The bystander in the same organization is untouched.
    assert one(engine, "SELECT status FROM enrollments WHERE id = :e", e=erased.world.enrollment_ids[0]) == "active"
