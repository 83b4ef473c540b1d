"""Erasure: no copy of a lead's personal data survives anywhere in the database.

The lead's data is seeded where the system really puts it: the leads API, an import job,
inbound email and Twilio hooks processed by their RQ jobs, customer webhook deliveries to a
loopback receiver that echoes the payload; the worker's rows (ledger, personalization,
links) by SQL. After the erasure every text-like column of every table (found through
``information_schema``, so a future table is covered too) and every Redis value is scanned.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import sqlalchemy as sa
from litestar.testing import TestClient
from redis import Redis
from rq import SimpleWorker
from rq.serializers import JSONSerializer
from sqlalchemy import Engine

from libs.crypto import SecretBox
from libs.db.base import utcnow
from libs.db.models.campaign import Campaign, CampaignStep, Enrollment, Message
from libs.db.models.inbound import MessageLink
from libs.db.models.worker import Personalization
from libs.db.session import system_session
from libs.queue import QueueName, get_queue
from services.campaign.app import create_app
from services.campaign.inbound import jobs as inbound_jobs
from services.campaign.settings import CampaignSettings
from tests.services.campaign.inbound.factories import ACCOUNT_SID, SMS_NUMBER, World, create_world
from tests.services.campaign.inbound.test_twilio import signed_post
from tests.services.campaign.leads.conftest import Actor
from tests.support import pii
from tests.support.tokens import TokenSigner

EMAIL = "Zelda.Quistorff@example.com"
PHONE = "+12125550199"
FIRST, LAST = "Zelda", "Quistorff"
INBOUND_SECRET = "erasure-inbound-secret"
PERSON = pii.Person(email=EMAIL, phone=PHONE, first_name=FIRST, last_name=LAST)
SEEDED = {
    "leads",
    "messages",
    "message_events",
    "personalizations",
    "inbound_events",
    "message_links",
    "lead_import_rejections",
    "suppressions",
    "webhook_deliveries",
    "webhook_attempts",
}
"""Tables the seeding must have put the person into (proves the scanner sees what it should)."""


# --------------------------------------------------------------------------- scanners


def scan_database(engine: Engine) -> dict[str, list[str]]:
    """Return ``{table: [column, ...]}`` of every column whose values hold the person's email, phone or names."""
    return pii.scan_database(engine, PERSON, tables=SEEDED)


def scan_redis(redis: Redis) -> list[bytes]:
    """Every Redis key or value holding the person's data."""
    return pii.scan_redis(redis, PERSON)


# --------------------------------------------------------------------------- fixtures


@contextmanager
def echo_receiver() -> Iterator[str]:
    """A loopback webhook receiver that echoes each payload back, as careless endpoints do."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hooks/erasure"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def client(
    campaign_settings: CampaignSettings, signer: TokenSigner, monkeypatch: pytest.MonkeyPatch
) -> Iterator[TestClient]:  # type: ignore[type-arg]
    """The whole campaign app, with the inbound email hook and private webhook URLs enabled (routes and jobs)."""
    monkeypatch.setenv("SDR_INBOUND_EMAIL_SECRET", INBOUND_SECRET)
    monkeypatch.setenv("SDR_WEBHOOKS_ALLOW_PRIVATE", "true")
    monkeypatch.setenv("SDR_WEBHOOK_BACKOFF_BASE", "0")
    monkeypatch.delenv("SDR_PUBLIC_BASE_URL", raising=False)
    with TestClient(create_app(campaign_settings, verifier=signer.verifier())) as c:
        yield c
    inbound_jobs.dispose()


@pytest.fixture
def run_inbound(redis: Redis) -> Callable[[], None]:
    """Run every job of the ``inbound`` queue with a real RQ worker; fail on a failed job."""

    def run() -> None:
        queue = get_queue(QueueName.INBOUND, redis)
        SimpleWorker([queue], connection=redis, serializer=JSONSerializer).work(burst=True, with_scheduler=False)
        assert queue.failed_job_registry.get_job_ids() == []

    return run


@dataclass
class Seeded:
    """Ids of what the seeding created for the person (and a bystander in the same organization)."""

    actor: Actor
    world: World
    lead_id: uuid.UUID
    enrollment_ids: list[uuid.UUID]
    sent_email: uuid.UUID
    sent_sms: uuid.UUID
    queued: uuid.UUID
    held: uuid.UUID
    bystander_message: uuid.UUID


def _message(
    engine: Engine, world: World, enrollment: uuid.UUID, lead: uuid.UUID, step: int, **fields: Any
) -> uuid.UUID:
    with system_session(engine) as s:
        message = Message(
            org_id=world.org_id,
            enrollment_id=enrollment,
            step_id=world.step_ids[step],
            campaign_id=world.campaign_id,
            lead_id=lead,
            channel=("email", "sms", "email")[step],
            **fields,
        )
        s.add(message)
        s.flush()
        return message.id


def _personalize(engine: Engine, world: World, message_id: uuid.UUID, enrollment: uuid.UUID, who: str) -> None:
    with system_session(engine) as s:
        s.add(
            Personalization(
                org_id=world.org_id,
                message_id=message_id,
                enrollment_id=enrollment,
                step_id=world.step_ids[0],
                prompt_version="v-test",
                channel="email",
                source="openai",
                model="gpt-test",
                prompt=[{"role": "user", "content": f"Write a first email to {who}."}],
                input={"lead": who},
                output={"subject": f"An idea for {who}", "body": f"Hi {who}"},
                content={"subject": f"An idea for {who}", "body": f"Hi {who}"},
                prompt_tokens=120,
                completion_tokens=80,
            )
        )


def _reply_mime(message_id: uuid.UUID) -> bytes:
    return (
        # Some mail clients build the Message-ID from the sender's name.
        f"Message-ID: <{FIRST.lower()}.{LAST.lower()}.{uuid.uuid4().hex}@example.com>\r\n"
        f"From: {FIRST} {LAST} <{EMAIL}>\r\n"
        "To: Sam <sam@acme.example>\r\n"
        f"Subject: Re: An idea for {FIRST}\r\n"
        f"In-Reply-To: <{message_id}@acme.example>\r\n"
        f"References: <{message_id}@acme.example>\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=UTF-8\r\n"
        "\r\n"
        f"Thanks! {FIRST} here, call me on +1 212 555 0199.\r\n"
    ).encode()


@pytest.fixture
def seeded(
    client: TestClient,  # type: ignore[type-arg]
    signer: TokenSigner,
    engine: Engine,
    campaign_settings: CampaignSettings,
    run_jobs: Any,
    run_inbound: Callable[[], None],
) -> Seeded:
    """The person's data everywhere the system puts it, plus a bystander lead whose data must stay."""
    box = SecretBox.from_settings(campaign_settings)
    world = create_world(engine, box, stop_rules={"on_reply": False})
    actor = Actor(client, signer, world.org_id)
    bystander, bystander_enrollment = world.lead_ids[0], world.enrollment_ids[0]

    # The leads API and an import job whose rejected rows keep the raw cells.
    lead = actor.create_lead(
        email=EMAIL, phone="(212) 555-0199", first_name=FIRST, last_name=LAST, consent_sms=True, consent_source="form"
    )
    lead_id = uuid.UUID(lead["id"])
    csv = (
        "email,phone,first_name,last_name\n"
        f"{EMAIL},12,{FIRST},{LAST}\n"
        f"not-an-address,(212) 555-0199,{FIRST},{LAST}\n"
        "also-not-an-address,,Other,Person\n"
    )
    r = actor.upload(csv.encode())
    assert r.status_code == 202, r.text
    run_jobs()
    assert actor.get(f"/api/leads/imports/{r.json()['id']}").json()["rows_rejected"] == 3

    # Enrolled through the API; a second campaign of the brand holds a message for later.
    r = actor.post(f"/api/campaigns/{world.campaign_id}/enrollments", {"lead_ids": [str(lead_id)]})
    assert r.status_code == 200, r.text
    assert r.json()["enrolled"] == 1
    with system_session(engine) as s:
        (enrollment,) = s.execute(sa.select(Enrollment.id).where(Enrollment.lead_id == lead_id)).scalars()
        later = Campaign(org_id=world.org_id, brand_id=world.brand_id, name="Later", status="active")
        later.stop_rules = {**later.stop_rules, "on_reply": False}
        s.add(later)
        s.flush()
        later_step = CampaignStep(org_id=world.org_id, campaign_id=later.id, position=1, channel="sms")
        later_enrollment = Enrollment(org_id=world.org_id, campaign_id=later.id, lead_id=lead_id)
        s.add_all([later_step, later_enrollment])
        s.flush()
        held = Message(
            org_id=world.org_id,
            enrollment_id=later_enrollment.id,
            step_id=later_step.id,
            campaign_id=later.id,
            lead_id=lead_id,
            channel="sms",
            status="held",
            hold_reason="quiet_hours",
            next_attempt_at=utcnow() + timedelta(hours=8),
            body=f"{FIRST}, a quick follow-up.",
        )
        s.add(held)
        s.flush()
        held_id, later_enrollment_id = held.id, later_enrollment.id

    # What the worker writes: the ledger with rendered text, the personalization, the links.
    now = utcnow()
    sent_email = _message(
        engine,
        world,
        enrollment,
        lead_id,
        0,
        status="sent",
        attempt=1,
        sent_at=now,
        provider_message_id=f"<{uuid.uuid4()}@acme.example>",
        subject=f"An idea for {FIRST}",
        body=f"Hi {FIRST} {LAST}, we wrote to {EMAIL} and {PHONE}.",
    )
    sent_sms = _message(
        engine,
        world,
        enrollment,
        lead_id,
        1,
        status="sent",
        attempt=1,
        sent_at=now,
        provider_message_id="SM0a1b2c3d4e5f60718293a4b5c6d7e8f9",
        body=f"{FIRST}, 10 minutes this week?",
        error_detail=f"earlier attempt: {PHONE} was busy",
    )
    queued = _message(engine, world, enrollment, lead_id, 2, status="queued", due_at=now)
    _personalize(engine, world, sent_email, enrollment, f"{FIRST} {LAST} <{EMAIL}>")
    with system_session(engine) as s:
        s.add(MessageLink(message_id=sent_email, position=0, org_id=world.org_id, url="https://acme.example/zelda-q"))
    bystander_message = _message(
        engine, world, bystander_enrollment, bystander, 0, status="sent", attempt=1, sent_at=now, body="Hi Lead0"
    )
    _personalize(engine, world, bystander_message, bystander_enrollment, "Lead0")

    # What came back, through the real hooks and their jobs, owed to a customer webhook.
    with echo_receiver() as url:
        r = actor.post("/api/webhooks", {"url": url, "event_types": ["replied", "delivered"]})
        assert r.status_code == 201, r.text
        headers = {"Content-Type": "message/rfc822", "X-Inbound-Secret": INBOUND_SECRET}
        r = client.post("/hooks/email/inbound", content=_reply_mime(sent_email), headers=headers)
        assert r.status_code == 202, r.text
        sms = {"AccountSid": ACCOUNT_SID, "MessageSid": "SMin0001", "From": PHONE, "To": SMS_NUMBER}
        assert (
            signed_post(client, "/hooks/twilio/sms/inbound", {**sms, "Body": f"Sure, {FIRST} here"}).status_code == 200
        )
        status = {
            "AccountSid": ACCOUNT_SID,
            "MessageSid": "SM0a1b2c3d4e5f60718293a4b5c6d7e8f9",
            "MessageStatus": "delivered",
        }
        r = signed_post(client, "/hooks/twilio/messages/status", {**status, "To": PHONE, "From": SMS_NUMBER})
        assert r.status_code == 200
        # A callback for a message we do not know still names the person's number: found by value.
        unknown = {**status, "MessageSid": "SM" + "f" * 32, "MessageStatus": "undelivered"}
        assert signed_post(client, "/hooks/twilio/messages/status", {**unknown, "To": PHONE}).status_code == 200
        run_inbound()
    with engine.connect() as conn:
        unlinked = conn.execute(
            sa.text("SELECT count(*) FROM inbound_events WHERE lead_id IS NULL AND message_id IS NULL")
        ).scalar()
    assert unlinked == 1
    with engine.connect() as conn:
        types = set(
            conn.execute(sa.text("SELECT type FROM message_events WHERE lead_id = :l"), {"l": lead_id}).scalars()
        )
        delivered = conn.execute(sa.text("SELECT count(*) FROM webhook_deliveries WHERE status = 'delivered'")).scalar()
    assert types >= {"replied", "delivered"}
    assert delivered >= 2

    # An unsubscribe kept in clear text (added after the enrollment, which it would have blocked).
    actor.suppress(EMAIL, channel="email", reason="unsubscribe")
    return Seeded(
        actor=actor,
        world=world,
        lead_id=lead_id,
        enrollment_ids=[enrollment, later_enrollment_id],
        sent_email=sent_email,
        sent_sms=sent_sms,
        queued=queued,
        held=held_id,
        bystander_message=bystander_message,
    )


# --------------------------------------------------------------------------- tests


def test_erasure_leaves_no_personal_data_in_any_table_or_in_redis(
    seeded: Seeded, engine: Engine, redis: Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    actor, lead_id = seeded.actor, seeded.lead_id
    before = scan_database(engine)
    assert set(before) >= SEEDED, before
    analytics = actor.get(f"/api/campaigns/{seeded.world.campaign_id}/analytics").json()
    capsys.readouterr()

    assert actor.delete(f"/api/leads/{lead_id}").status_code == 204

    logged = capsys.readouterr().err
    assert "lead_erased" in logged
    assert str(lead_id) in logged
    assert not [n for n in (EMAIL.lower(), PHONE[2:], FIRST.lower(), LAST.lower()) if n in logged.lower()]
    assert scan_database(engine) == {}
    assert scan_redis(redis) == []
    # Aggregate statistics are computed from the tombstones as from the originals.
    assert actor.get(f"/api/campaigns/{seeded.world.campaign_id}/analytics").json() == analytics
    timeline = actor.get(f"/api/leads/{lead_id}/timeline")
    assert timeline.status_code == 200
    assert FIRST.lower() not in timeline.text.lower()
    assert EMAIL.lower() not in timeline.text.lower()


def test_erasure_stops_the_sequences_and_no_claim_can_send_what_was_waiting(seeded: Seeded, engine: Engine) -> None:
    actor = seeded.actor
    assert actor.delete(f"/api/leads/{seeded.lead_id}").status_code == 204
    with engine.connect() as conn:
        messages = {
            r.id: r
            for r in conn.execute(
                sa.text("SELECT * FROM messages WHERE id = ANY(:ids)"),
                {"ids": [seeded.sent_email, seeded.sent_sms, seeded.queued, seeded.held, seeded.bystander_message]},
            )
        }
        enrollments = conn.execute(
            sa.text("SELECT status, stopped_reason, next_due_at FROM enrollments WHERE id = ANY(:ids)"),
            {"ids": seeded.enrollment_ids},
        ).all()
        bystander_enrollment = conn.execute(
            sa.text("SELECT status FROM enrollments WHERE id = :id"), {"id": seeded.world.enrollment_ids[0]}
        ).scalar_one()
        personalization = conn.execute(
            sa.text("SELECT prompt, content, prompt_tokens, model FROM personalizations WHERE message_id = :m"),
            {"m": seeded.sent_email},
        ).one()
        bystander_content = conn.execute(
            sa.text("SELECT content FROM personalizations WHERE message_id = :m"), {"m": seeded.bystander_message}
        ).scalar_one()
        event_data = conn.execute(
            sa.text("SELECT type, data FROM message_events WHERE lead_id = :l"), {"l": seeded.lead_id}
        ).all()
        # The worker's claim takes only ``queued`` or ``held`` rows: the same condition finds nothing now.
        claimed = conn.execute(
            sa.text(
                "UPDATE messages SET status = 'sending' WHERE id = ANY(:ids) AND status IN ('queued', 'held') "
                "RETURNING id"
            ),
            {"ids": [seeded.queued, seeded.held]},
        ).all()
        conn.rollback()
    assert claimed == []
    for waiting in (seeded.queued, seeded.held):
        row = messages[waiting]
        assert (row.status, row.hold_reason, row.next_attempt_at, row.body) == ("skipped", "erased", None, None)
    for gone in (seeded.sent_email, seeded.sent_sms):
        row = messages[gone]
        # Tombstones: ids, status, channel, times and provider ids stay; the text goes.
        assert row.status in ("sent", "delivered")
        assert row.sent_at is not None
        assert row.provider_message_id
        assert (row.subject, row.body, row.error_detail) == (None, None, None)
    assert messages[seeded.bystander_message].body == "Hi Lead0"
    assert sorted(e.status for e in enrollments) == ["stopped", "stopped"]
    assert {(e.stopped_reason, e.next_due_at) for e in enrollments} == {("erased", None)}
    assert bystander_enrollment == "active"
    assert (personalization.prompt, personalization.content) == ([], {})
    assert (personalization.prompt_tokens, personalization.model) == (120, "gpt-test")
    assert bystander_content == {"subject": "An idea for Lead0", "body": "Hi Lead0"}
    assert event_data
    assert all(data.get("erased") is True for _, data in event_data)
    assert {t for t, _ in event_data} >= {"replied", "delivered"}


def test_the_person_cannot_come_back_by_api_or_import_and_a_second_erasure_sweeps_again(
    seeded: Seeded, engine: Engine, run_jobs: Any
) -> None:
    actor = seeded.actor
    assert actor.delete(f"/api/leads/{seeded.lead_id}").status_code == 204
    for body in ({"email": EMAIL.upper()}, {"phone": "212.555.0199"}):
        r = actor.post("/api/leads", body)
        assert r.status_code == 409
        assert r.json()["code"] == "ContactErased"
    entries = actor.get("/api/suppressions").json()["items"]
    assert {(s["kind"], s["reason"], s["channel"]) for s in entries} == {("hash", "erasure", "all")}
    assert len(entries) == 2
    r = actor.upload(f"email,phone,first_name\n{EMAIL.lower()},,{FIRST}\n,+1 212 555 0199,{LAST}\n".encode())
    assert r.status_code == 202, r.text
    run_jobs()
    item = actor.get(f"/api/leads/imports/{r.json()['id']}").json()
    assert (item["rows_imported"], item["rows_rejected"]) == (0, 2)
    assert scan_database(engine) == {}

    # A send in flight during the erasure may still write text; erasing again sweeps it.
    with system_session(engine) as s:
        s.execute(
            sa.text("UPDATE messages SET error_detail = :d WHERE id = :id"),
            {"d": f"550 5.1.1 <{EMAIL}> unknown", "id": seeded.sent_email},
        )
    assert "messages" in scan_database(engine)
    assert actor.delete(f"/api/leads/{seeded.lead_id}").status_code == 204
    assert scan_database(engine) == {}


def test_erasing_a_lead_of_another_organization_is_a_404_and_changes_nothing(
    seeded: Seeded, bob: Actor, engine: Engine
) -> None:
    before = scan_database(engine)
    assert set(before) >= SEEDED
    assert bob.delete(f"/api/leads/{seeded.lead_id}").status_code == 404
    assert scan_database(engine) == before
