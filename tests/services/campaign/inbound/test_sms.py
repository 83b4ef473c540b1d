"""Inbound SMS: every opt-out word and phrase, all-contact opt-outs, START, HELP, and replies."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from litestar.testing import TestClient
from sqlalchemy import Engine

from libs.crypto import SecretBox
from tests.services.campaign.inbound.factories import ACCOUNT_SID, SMS_NUMBER, add_message, create_world, one, rows
from tests.services.campaign.inbound.test_twilio import signed_post

PATH = "/hooks/twilio/sms/inbound"
WORDS = [
    "STOP",
    "stop",
    "  Stop  ",
    "STOP.",
    "STOPALL",
    "UNSUBSCRIBE",
    "CANCEL",
    "END",
    "QUIT",
    "REVOKE",
    "OPT OUT",
    "opt out",
    "OPTOUT",
    "Opt-Out!",
    "stop please",
    "Stop 🙏",
    "end.",
    "Quit!!",
    "revoke ",
]
PHRASES = [
    "please stop texting me",
    "remove me",
    "Remove me from your list",
    "no more texts please",
    "Please don't text me again",
]
ALL_CONTACT = ["stop contacting me", "Don't call, text or email me", "remove me from all your lists"]


def text(client: TestClient, sid: str, body: str, phone: str) -> Any:  # type: ignore[type-arg]
    params = {
        "AccountSid": ACCOUNT_SID,
        "MessageSid": sid,
        "SmsSid": sid,
        "From": phone,
        "To": SMS_NUMBER,
        "Body": body,
    }
    return signed_post(client, PATH, params)


def messages_in(twiml: str) -> list[str]:
    return re.findall(r"<Message>(.*?)</Message>", twiml)


def test_every_opt_out_word_and_phrase_suppresses_sms_and_voicemail_and_stops_enrollments(
    client: TestClient,
    engine: Engine,
    box: SecretBox,  # type: ignore[type-arg]
) -> None:
    bodies = WORDS + PHRASES
    world = create_world(engine, box, leads=len(bodies))
    for i, body in enumerate(bodies):
        phone = f"+1{2015550100 + i}"
        r = text(client, f"SMstop{i}", body, phone)
        assert r.status_code == 200, body
        replies = messages_in(r.text)
        assert len(replies) == 1, body
        assert "unsubscribed" in replies[0]
        assert "START" in replies[0]
        channels = rows(engine, "SELECT channel FROM suppressions WHERE value = :p ORDER BY channel", p=phone)
        assert [c.channel for c in channels] == ["sms", "voicemail"], body
        status = one(engine, "SELECT status FROM enrollments WHERE id = :e", e=world.enrollment_ids[i])
        assert status == "stopped", body
    events = rows(engine, "SELECT outcome, received_at, effective_at, processed_at FROM inbound_events")
    assert len(events) == len(bodies)
    for event in events:
        assert event.outcome == "opt_out"
        assert event.received_at <= event.effective_at <= event.processed_at
    assert one(engine, "SELECT count(*) FROM message_events WHERE type = 'unsubscribed'") == len(bodies)
    # Email steps are not suppressed by an SMS STOP.
    assert one(engine, "SELECT count(*) FROM suppressions WHERE kind = 'email'") == 0


@pytest.mark.parametrize("body", ALL_CONTACT)
def test_a_request_to_stop_all_contact_suppresses_the_person_everywhere(
    body: str,
    client: TestClient,
    engine: Engine,
    box: SecretBox,  # type: ignore[type-arg]
) -> None:
    create_world(engine, box)
    r = text(client, "SMall", body, "+12015550100")
    assert len(messages_in(r.text)) == 1
    found = rows(engine, "SELECT channel, kind, value FROM suppressions ORDER BY kind")
    assert found == [("all", "email", "lead0@example.com"), ("all", "phone", "+12015550100")]
    assert one(engine, "SELECT status FROM leads") == "suppressed"


def test_a_replayed_stop_is_processed_once_with_one_confirmation(
    client: TestClient,
    engine: Engine,
    box: SecretBox,  # type: ignore[type-arg]
) -> None:
    create_world(engine, box)
    first = text(client, "SMdup", "STOP", "+12015550100")
    second = text(client, "SMdup", "STOP", "+12015550100")
    assert len(messages_in(first.text)) == 1
    assert messages_in(second.text) == []
    assert one(engine, "SELECT count(*) FROM inbound_events") == 1
    assert one(engine, "SELECT count(*) FROM message_events WHERE type = 'unsubscribed'") == 1


def test_start_resubscribes_sms_and_records_when(
    client: TestClient,
    engine: Engine,
    box: SecretBox,  # type: ignore[type-arg]
) -> None:
    create_world(engine, box)
    text(client, "SM1", "STOP", "+12015550100")
    assert one(engine, "SELECT count(*) FROM suppressions") == 2
    r = text(client, "SM2", "start", "+12015550100")
    assert "resubscribed" in messages_in(r.text)[0]
    assert one(engine, "SELECT count(*) FROM suppressions") == 0
    assert one(engine, "SELECT status FROM leads") == "active"
    event = rows(engine, "SELECT outcome, effective_at FROM inbound_events WHERE dedupe_key = 'SM2'")[0]
    assert event.outcome == "opt_in"
    assert event.effective_at is not None
    assert one(engine, "SELECT payload->'params'->>'Body' FROM inbound_events WHERE dedupe_key = 'SM2'") == "start"


def test_help_answers_with_the_brand_help_text_and_changes_nothing(
    client: TestClient,
    engine: Engine,
    box: SecretBox,  # type: ignore[type-arg]
) -> None:
    create_world(engine, box)
    r = text(client, "SMhelp", "HELP", "+12015550100")
    (answer,) = messages_in(r.text)
    assert answer.startswith("Acme Analytics:")
    assert "Reply STOP to opt out." in answer
    assert "https://acme.example" in answer
    assert one(engine, "SELECT count(*) FROM suppressions") == 0
    assert one(engine, "SELECT status FROM enrollments") == "active"


def test_a_reply_stops_the_enrollment_and_its_queued_message_never_goes_out(
    client: TestClient,
    engine: Engine,
    box: SecretBox,
    run_inbound: Callable[[], int],  # type: ignore[type-arg]
) -> None:
    world = create_world(engine, box)
    sent = add_message(engine, world, step=1, provider_message_id="SMout")
    queued = add_message(engine, world, step=2, status="queued")
    r = text(client, "SMreply", "Sounds interesting, can we talk Tuesday?", "+12015550100")
    assert r.status_code == 200
    assert messages_in(r.text) == []
    assert one(engine, "SELECT status FROM enrollments") == "active"  # the job does the work
    run_inbound()
    enrollment = rows(engine, "SELECT status, stopped_reason, next_due_at FROM enrollments")[0]
    assert tuple(enrollment) == ("stopped", "replied", None)
    # The worker claims only queued/held rows of active enrollments: this one is gone for good.
    assert rows(engine, "SELECT status, hold_reason FROM messages WHERE id = :m", m=queued)[0] == ("skipped", "replied")
    replied = rows(engine, "SELECT message_id, data FROM message_events WHERE type = 'replied'")
    assert len(replied) == 1
    assert replied[0].message_id == sent
    assert replied[0].data["text"].startswith("Sounds interesting")
    assert one(engine, "SELECT count(*) FROM suppressions") == 0


def test_a_reply_leaves_enrollments_running_when_the_campaign_does_not_stop_on_reply(
    client: TestClient,
    engine: Engine,
    box: SecretBox,
    run_inbound: Callable[[], int],  # type: ignore[type-arg]
) -> None:
    world = create_world(engine, box, stop_rules={"on_reply": False})
    queued = add_message(engine, world, step=2, status="queued")
    text(client, "SMreply", "Thanks!", "+12015550100")
    run_inbound()
    assert one(engine, "SELECT status FROM enrollments") == "active"
    assert one(engine, "SELECT status FROM messages WHERE id = :m", m=queued) == "queued"
    assert one(engine, "SELECT count(*) FROM message_events WHERE type = 'replied'") == 1
