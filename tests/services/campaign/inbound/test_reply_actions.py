"""Acting on each reply: every intent's default action, per-campaign overrides, SMS, OpenAI and the webhook."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from litestar.testing import TestClient
from sqlalchemy import Engine

from libs.crypto import SecretBox
from libs.db.models.brand import ProviderCredential
from libs.db.models.campaign import DEFAULT_REPLY_ACTIONS
from libs.db.models.inbound import WebhookEndpoint
from libs.db.session import system_session
from libs.ledger.enrollments import CLAIM_DUE_ENROLLMENTS
from libs.ledger.messages import DISPATCH_DUE
from libs.replies.intents import Intent
from libs.security import Role
from services.campaign.inbound import jobs
from tests.services.campaign.inbound.conftest import EMAIL_SECRET
from tests.services.campaign.inbound.factories import add_message, create_world, one, rows
from tests.services.campaign.inbound.receiver import receiver
from tests.services.campaign.inbound.test_sms import text
from tests.support.providers import ProviderServer, completion, provider_server
from tests.support.tokens import TokenSigner

MIME = Path(__file__).with_name("mime")
ORIGINAL_LINE = "Thanks for reaching out. Tuesday at 10:00 works for me \u2013 send an invite."

REPLIES = {
    Intent.INTERESTED: "Sounds interesting, tell me more.",
    Intent.MEETING_REQUEST: "Tuesday at 10:00 works for me, send an invite.",
    Intent.QUESTION: "How much does it cost?",
    Intent.OBJECTION: "We already use a competitor and are happy with it.",
    Intent.WRONG_PERSON: "You have the wrong person.",
    Intent.NOT_INTERESTED: "Not interested, thanks.",
    Intent.OTHER: "ok",
}


def reply_mail(message_id: uuid.UUID, body: str, *, mail_id: str | None = None) -> bytes:
    raw = (MIME / "reply_thunderbird.eml").read_text(encoding="utf-8")
    raw = raw.replace("{message_id}", str(message_id)).replace(ORIGINAL_LINE, body)
    if mail_id is not None:
        raw = raw.replace("<5f0c2a7e-1d2b-4c55-9a55-0d1e2f3a4b5c@example.com>", f"<{mail_id}@example.com>")
    return raw.encode()


def deliver(client: TestClient, raw: bytes) -> Any:  # type: ignore[type-arg]
    headers = {"Content-Type": "message/rfc822", "X-Inbound-Secret": EMAIL_SECRET}
    r = client.post("/hooks/email/inbound", content=raw, headers=headers)
    assert r.status_code == 202, r.text
    return r.json()


@pytest.fixture
def world(engine: Engine, box: SecretBox) -> Any:
    """The first email sent, the enrollment's next step (an SMS) due in an hour, not yet in the ledger."""
    w = create_world(engine, box)
    w.first = add_message(engine, w, step=0, provider_message_id="250 queued")  # type: ignore[attr-defined]
    due_in_an_hour(engine)
    return w


def due_in_an_hour(engine: Engine) -> datetime:
    due = datetime.now(UTC) + timedelta(hours=1)
    with system_session(engine) as s:
        s.execute(sa.text("UPDATE enrollments SET next_due_at = :d"), {"d": due})
    return due


def set_actions(engine: Engine, world: Any, **actions: str) -> None:
    with system_session(engine) as s:
        s.execute(
            sa.text("UPDATE campaigns SET reply_actions = reply_actions || CAST(:a AS jsonb) WHERE id = :c"),
            {"a": json.dumps(actions), "c": world.campaign_id},
        )


def enrollment(engine: Engine) -> Any:
    return rows(engine, "SELECT status, stopped_reason, next_due_at, paused_until, paused_reason FROM enrollments")[0]


@pytest.mark.parametrize("intent", list(REPLIES))
def test_a_reply_that_answers_stops_the_sequence_and_marks_the_lead(
    intent: Intent,
    client: TestClient,
    engine: Engine,
    world: Any,
    run_inbound: Callable[[], int],
) -> None:
    deliver(client, reply_mail(world.first, REPLIES[intent]))
    run_inbound()
    assert one(engine, "SELECT intent FROM reply_classifications") == intent.value
    assert tuple(enrollment(engine))[:3] == ("stopped", "replied", None)
    (event,) = rows(engine, "SELECT data FROM message_events WHERE type = 'replied'")
    assert (event.data["intent"], event.data["action"]) == (intent.value, "stop")
    assert one(engine, "SELECT count(*) FROM suppressions") == 0


def test_the_defaults_cover_every_intent_safely() -> None:
    assert set(DEFAULT_REPLY_ACTIONS) == {i.value for i in Intent}
    pauses = {i for i, a in DEFAULT_REPLY_ACTIONS.items() if a == "pause"}
    assert pauses == {"out_of_office", "not_now"}
    assert DEFAULT_REPLY_ACTIONS["unsubscribe"] == "unsubscribe"
    assert DEFAULT_REPLY_ACTIONS["referral"] == "refer"


def test_a_campaign_can_let_the_sequence_continue_on_a_question(
    client: TestClient, engine: Engine, world: Any, run_inbound: Callable[[], int]
) -> None:
    set_actions(engine, world, question="continue")
    deliver(client, reply_mail(world.first, REPLIES[Intent.QUESTION]))
    run_inbound()
    assert enrollment(engine).status == "active"
    assert one(engine, "SELECT intent FROM reply_classifications") == "question"
    # No 'replied' event: the worker's on_reply rule would skip every later step.
    assert one(engine, "SELECT count(*) FROM message_events WHERE type = 'replied'") == 0


@pytest.mark.parametrize(
    ("body", "intent", "until"),
    [
        ("I am out of the office until December 7, 2026 with limited access to email.", "out_of_office", "2026-12-07"),
        ("Reach out again after January 15, 2027.", "not_now", "2027-01-15"),
    ],
)
def test_a_reply_with_a_date_pauses_the_enrollment_until_the_next_open_window_after_it(
    body: str,
    intent: str,
    until: str,
    client: TestClient,
    engine: Engine,
    world: Any,
    run_inbound: Callable[[], int],
) -> None:
    deliver(client, reply_mail(world.first, body))
    run_inbound()
    row = enrollment(engine)
    assert (row.status, row.paused_reason) == ("active", intent)
    assert row.paused_until.astimezone(UTC).date().isoformat() == until  # midnight in the campaign's zone (UTC)
    # The next step is an SMS in a Mon-Fri 09:00-17:00 window (and calling hours): the first open moment after it.
    local = row.next_due_at.astimezone(ZoneInfo("UTC"))
    assert local.weekday() < 5
    assert local.hour == 9
    assert local.minute == 0
    assert local.date().isoformat() >= until
    assert one(engine, "SELECT count(*) FROM message_events WHERE type = 'replied'") == 0


def test_an_absence_without_a_date_pauses_a_week(
    client: TestClient, engine: Engine, world: Any, run_inbound: Callable[[], int]
) -> None:
    deliver(client, reply_mail(world.first, "Out of office"))
    run_inbound()
    row = enrollment(engine)
    assert row.paused_reason == "out_of_office"
    assert row.paused_until.date() == (datetime.now(UTC) + timedelta(days=7)).date()


def test_an_out_of_office_autoresponder_pauses_without_counting_as_a_reply(
    client: TestClient, engine: Engine, world: Any, run_inbound: Callable[[], int]
) -> None:
    raw = (MIME / "out_of_office.eml").read_bytes().replace(b"{message_id}", str(world.first).encode())
    assert deliver(client, raw)["kind"] == "auto_reply"
    run_inbound()
    row = enrollment(engine)
    assert (row.status, row.paused_reason) == ("active", "out_of_office")
    assert row.paused_until is not None
    assert one(engine, "SELECT count(*) FROM message_events") == 0
    assert one(engine, "SELECT outcome FROM inbound_events") == "auto_reply"


def test_a_receipt_autoresponder_changes_nothing(
    client: TestClient, engine: Engine, world: Any, run_inbound: Callable[[], int]
) -> None:
    before = enrollment(engine)
    raw = (MIME / "out_of_office.eml").read_bytes().replace(b"{message_id}", str(world.first).encode())
    raw = raw.replace(b"I am out of the office until 1 December with limited access to email.", b"Thanks, received.")
    raw = raw.replace(b"For u=\r\nrgent matters contact ops@example.com.", b"").replace(b"For u=\nrgent", b"")
    deliver(client, raw)
    run_inbound()
    assert tuple(enrollment(engine)) == tuple(before)


def test_an_unsubscribe_the_classifier_reads_suppresses_and_stops(
    client: TestClient, engine: Engine, world: Any, run_inbound: Callable[[], int]
) -> None:
    deliver(client, reply_mail(world.first, "Please take me off your list"))
    run_inbound()
    assert rows(engine, "SELECT channel, value, reason FROM suppressions") == [
        ("email", "lead0@example.com", "unsubscribe")
    ]
    assert tuple(enrollment(engine))[:2] == ("stopped", "opted_out")


def test_a_referral_creates_the_referred_lead_and_stops_the_writer(
    client: TestClient, engine: Engine, world: Any, run_inbound: Callable[[], int]
) -> None:
    deliver(client, reply_mail(world.first, "I'm not the right person, please talk to Ana Ruiz at ana@globex.example."))
    run_inbound()
    referred = rows(
        engine, "SELECT id, first_name, last_name, custom_fields FROM leads WHERE email = 'ana@globex.example'"
    )
    assert len(referred) == 1
    assert (referred[0].first_name, referred[0].last_name) == ("Ana", "Ruiz")
    assert referred[0].custom_fields == {"source": "referral", "referred_by_lead_id": str(world.lead_ids[0])}
    assert one(engine, "SELECT count(*) FROM enrollments WHERE lead_id = :l", l=referred[0].id) == 0
    assert enrollment(engine).status == "stopped"


def test_a_campaign_may_enroll_the_referred_lead(
    client: TestClient, engine: Engine, world: Any, run_inbound: Callable[[], int]
) -> None:
    set_actions(engine, world, referral="refer_and_enroll")
    deliver(client, reply_mail(world.first, "I'm not the right person, please talk to Ana Ruiz at ana@globex.example."))
    run_inbound()
    (row,) = rows(
        engine,
        "SELECT e.status, e.next_step_position, e.next_due_at FROM enrollments e JOIN leads l ON l.id = e.lead_id "
        "WHERE l.email = 'ana@globex.example'",
    )
    assert (row.status, row.next_step_position) == ("active", 1)
    assert row.next_due_at is not None


def test_a_suppressed_referred_address_is_not_enrolled(
    client: TestClient, engine: Engine, world: Any, run_inbound: Callable[[], int]
) -> None:
    set_actions(engine, world, referral="refer_and_enroll")
    with system_session(engine) as s:
        s.execute(
            sa.text(
                "INSERT INTO suppressions (id, org_id, channel, kind, value, reason, created_at) "
                "VALUES (gen_random_uuid(), :o, 'all', 'email', 'ana@globex.example', 'manual', now())"
            ),
            {"o": world.org_id},
        )
    deliver(client, reply_mail(world.first, "I'm not the right person, please talk to Ana Ruiz at ana@globex.example."))
    run_inbound()
    assert one(engine, "SELECT status FROM leads WHERE email = 'ana@globex.example'") == "suppressed"
    assert one(engine, "SELECT count(*) FROM enrollments") == 1


def test_a_reply_stops_the_next_step_before_the_ticker_creates_it(
    client: TestClient, engine: Engine, world: Any, run_inbound: Callable[[], int]
) -> None:
    with system_session(engine) as s:  # the next step is due now
        s.execute(sa.text("UPDATE enrollments SET next_due_at = now() - interval '1 minute'"))
    deliver(client, reply_mail(world.first, REPLIES[Intent.INTERESTED]))
    run_inbound()
    with system_session(engine) as s:
        claimed = s.execute(CLAIM_DUE_ENROLLMENTS, {"now": datetime.now(UTC), "batch": 10}).all()
    assert claimed == []
    assert one(engine, "SELECT count(*) FROM messages") == 1


# --------------------------------------------------------------------------- SMS


def test_an_sms_reply_goes_through_the_classifier_and_pauses(
    client: TestClient, engine: Engine, box: SecretBox, run_inbound: Callable[[], int]
) -> None:
    w = create_world(engine, box)
    add_message(engine, w, step=1, provider_message_id="SMout")
    due_in_an_hour(engine)
    text(client, "SMooo", "Out of office until December 7, 2026", "+12015550100")
    run_inbound()
    assert one(engine, "SELECT intent FROM reply_classifications") == "out_of_office"
    row = enrollment(engine)
    assert (row.status, row.paused_reason) == ("active", "out_of_office")


def test_stop_by_sms_still_wins_without_a_classification(
    client: TestClient, engine: Engine, box: SecretBox, run_inbound: Callable[[], int]
) -> None:
    w = create_world(engine, box)
    add_message(engine, w, step=1, provider_message_id="SMout")
    text(client, "SMstop", "STOP", "+12015550100")
    run_inbound()
    assert one(engine, "SELECT count(*) FROM reply_classifications") == 0
    assert tuple(enrollment(engine))[:2] == ("stopped", "opted_out")


# --------------------------------------------------------------------------- OpenAI and the webhook


@pytest.fixture
def openai_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[ProviderServer]:
    with provider_server() as server:
        monkeypatch.setenv("SDR_OPENAI_BASE_URL", server.url + "/v1")
        monkeypatch.setenv("SDR_OPENAI_MAX_RETRIES", "0")
        monkeypatch.setenv("SDR_OPENAI_TIMEOUT", "5")
        yield server


def add_openai_key(engine: Engine, box: SecretBox, org_id: uuid.UUID) -> None:
    with system_session(engine) as s:
        key = "sk-test-0123456789"
        sealed = box.encrypt(key)
        s.add(ProviderCredential(org_id=org_id, provider="openai", secret_encrypted=sealed, secret_last4=key[-4:]))


def model_answer(intent: str, **fields: Any) -> dict[str, Any]:
    return {
        "intent": intent,
        "confidence": 0.93,
        "not_before": fields.get("not_before"),
        "referral_name": None,
        "referral_email": None,
    }


def test_the_model_chooses_the_intent_when_the_organization_has_a_key(
    client: TestClient,
    engine: Engine,
    box: SecretBox,
    world: Any,
    openai_server: ProviderServer,
) -> None:
    add_openai_key(engine, box, world.org_id)
    openai_server.script("chat", completion(model_answer("not_now", not_before="2027-03-01")))
    with system_session(engine) as s:
        s.add(
            WebhookEndpoint(
                org_id=world.org_id,
                url="https://hooks.example.com/tidewater",
                event_types=["reply.received"],
                secret_encrypted=box.encrypt("whsec_test"),
            )
        )
    # Words the local rules read as interest: the model's answer decides.
    answer = deliver(client, reply_mail(world.first, REPLIES[Intent.INTERESTED]))
    assert jobs.process_inbound_email(answer["event_id"]) == "reply"
    assert openai_server.count("chat") == 1
    sent_text = str(openai_server.received("chat")[0].json)
    assert "sk-test" not in sent_text
    assert rows(engine, "SELECT intent, source FROM reply_classifications")[0] == ("not_now", "openai")
    row = enrollment(engine)
    assert (row.paused_reason, row.paused_until.date().isoformat()) == ("not_now", "2027-03-01")
    (delivery,) = rows(engine, "SELECT event_type, payload FROM webhook_deliveries")
    assert delivery.event_type == "reply.received"
    data = delivery.payload["data"]
    assert (data["intent"], data["action"], data["source"]) == ("not_now", "pause", "openai")
    assert data["confidence"] == pytest.approx(0.93)
    assert data["fields"]["not_before"] == "2027-03-01"
    assert data["message_id"] == str(world.first)
    assert data["lead_id"] == str(world.lead_ids[0])
    assert data["campaign_id"] == str(world.campaign_id)
    assert data["resumes_at"] is not None


def test_a_pause_never_brings_a_later_step_forward(
    client: TestClient, engine: Engine, world: Any, run_inbound: Callable[[], int]
) -> None:
    later = datetime(2027, 6, 1, 9, 0, tzinfo=UTC)
    with system_session(engine) as s:
        s.execute(sa.text("UPDATE enrollments SET next_due_at = :d"), {"d": later})
    deliver(client, reply_mail(world.first, "I am out of the office until December 7, 2026."))
    run_inbound()
    row = enrollment(engine)
    assert row.paused_reason == "out_of_office"
    assert row.next_due_at == later


def test_an_endpoint_subscribed_to_reply_received_gets_the_intent_over_http(
    make_client: Callable[..., TestClient],  # type: ignore[type-arg]
    signer: TokenSigner,
    engine: Engine,
    world: Any,
    run_inbound: Callable[[], int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SDR_WEBHOOKS_ALLOW_PRIVATE", "true")  # the delivery job reads it (loopback receiver)
    client = make_client(webhooks_allow_private=True)
    headers = {"Authorization": f"Bearer {signer.mint(org_id=world.org_id, role=Role.ADMIN)}"}
    with receiver() as hook:
        r = client.post("/api/webhooks", json={"url": hook.url, "event_types": ["reply.received"]}, headers=headers)
        assert r.status_code == 201, r.text
        deliver(client, reply_mail(world.first, REPLIES[Intent.MEETING_REQUEST]))
        run_inbound()
        (request,) = hook.requests
    body = json.loads(request.body)
    assert body["type"] == "reply.received"
    assert (body["data"]["intent"], body["data"]["action"]) == ("meeting_request", "stop")
    assert body["data"]["lead_id"] == str(world.lead_ids[0])
    assert one(engine, "SELECT status FROM webhook_deliveries") == "delivered"


def test_an_sms_unsubscribe_the_model_reads_suppresses_the_number(
    client: TestClient,
    engine: Engine,
    box: SecretBox,
    run_inbound: Callable[[], int],
    openai_server: ProviderServer,
) -> None:
    w = create_world(engine, box)
    add_openai_key(engine, box, w.org_id)
    add_message(engine, w, step=1, provider_message_id="SMout")
    openai_server.script("chat", completion(model_answer("unsubscribe")))
    text(client, "SMleave", "I'd rather you left me alone from now on", "+12015550100")
    run_inbound()
    assert openai_server.count("chat") == 1
    assert sorted(rows(engine, "SELECT channel, value FROM suppressions")) == [
        ("sms", "+12015550100"),
        ("voicemail", "+12015550100"),
    ]
    assert tuple(enrollment(engine))[:2] == ("stopped", "opted_out")


def test_a_pause_holds_a_next_step_already_queued_until_the_resume_time(
    client: TestClient, engine: Engine, world: Any, run_inbound: Callable[[], int]
) -> None:
    with system_session(engine) as s:  # the ticker has already made the next step's message
        s.execute(sa.text("UPDATE enrollments SET next_due_at = NULL"))
    queued = add_message(engine, world, step=1, status="queued")
    deliver(client, reply_mail(world.first, "I am out of the office until December 7, 2026."))
    run_inbound()
    resume = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)  # Monday, the SMS step's window opens at 09:00
    assert rows(engine, "SELECT status, next_attempt_at FROM messages WHERE id = :m", m=queued)[0] == ("queued", resume)
    assert enrollment(engine).paused_reason == "out_of_office"
    with system_session(engine) as s:  # the ticker queues it again only once the time has come
        assert s.execute(DISPATCH_DUE, {"now": resume - timedelta(minutes=1), "batch": 10}).all() == []
    with system_session(engine) as s:
        assert [r.id for r in s.execute(DISPATCH_DUE, {"now": resume, "batch": 10})] == [queued]
