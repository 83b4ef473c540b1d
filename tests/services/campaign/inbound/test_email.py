"""Inbound email on /hooks/email/inbound, with real MIME: replies, DSN bounces, auto-replies, malformed."""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient
from redis import Redis
from sqlalchemy import Engine

from libs.crypto import SecretBox
from libs.queue import QueueName, get_queue
from tests.services.campaign.inbound.conftest import EMAIL_SECRET
from tests.services.campaign.inbound.factories import add_message, create_world, one, rows

MIME = Path(__file__).with_name("mime")
PATH = "/hooks/email/inbound"


def fixture(name: str, message_id: uuid.UUID) -> bytes:
    return (MIME / name).read_bytes().replace(b"{message_id}", str(message_id).encode())


def deliver(client: TestClient, raw: bytes, headers: dict[str, str] | None = None) -> Any:  # type: ignore[type-arg]
    all_headers = {"Content-Type": "message/rfc822", "X-Inbound-Secret": EMAIL_SECRET}
    if headers is not None:
        all_headers = {"Content-Type": "message/rfc822", **headers}
    return client.post(PATH, content=raw, headers=all_headers)


@pytest.fixture
def sent(engine: Engine, box: SecretBox) -> tuple[Any, uuid.UUID, uuid.UUID]:
    """A world with the first email sent and the next email step already queued."""
    world = create_world(engine, box)
    first = add_message(engine, world, step=0, provider_message_id="250 queued")
    queued = add_message(engine, world, step=2, status="queued")
    return world, first, queued


def test_a_reply_from_a_mail_client_is_matched_and_stops_the_sequence(
    client: TestClient,
    engine: Engine,
    sent: Any,
    run_inbound: Callable[[], int],  # type: ignore[type-arg]
) -> None:
    _, first, queued = sent
    r = deliver(client, fixture("reply_thunderbird.eml", first))
    assert r.status_code == 202
    assert r.json()["kind"] == "reply"
    run_inbound()
    (event,) = rows(engine, "SELECT message_id, data FROM message_events WHERE type = 'replied'")
    assert event.message_id == first
    assert event.data["text"].startswith("Hi Sam,")
    assert "We cut reporting time" not in event.data["text"]  # the quoted original is dropped
    assert one(engine, "SELECT status FROM enrollments") == "stopped"
    assert one(engine, "SELECT status FROM messages WHERE id = :m", m=queued) == "skipped"
    assert one(engine, "SELECT count(*) FROM suppressions") == 0


def test_a_dsn_hard_bounce_marks_the_message_bounced_and_suppresses_the_address(
    client: TestClient,
    engine: Engine,
    sent: Any,
    run_inbound: Callable[[], int],  # type: ignore[type-arg]
) -> None:
    _, first, _ = sent
    assert deliver(client, fixture("dsn_hard_bounce.eml", first)).json()["kind"] == "hard_bounce"
    run_inbound()
    assert rows(engine, "SELECT status, error_code FROM messages WHERE id = :m", m=first)[0] == ("bounced", "dsn_5.1.1")
    assert rows(engine, "SELECT channel, kind, value, reason FROM suppressions") == [
        ("email", "email", "lead0@example.com", "bounce")
    ]
    assert one(engine, "SELECT data->>'status' FROM message_events WHERE type = 'bounced'") == "5.1.1"
    event = rows(engine, "SELECT outcome, effective_at FROM inbound_events")[0]
    assert event.outcome == "hard_bounce"
    assert event.effective_at is not None


def test_a_soft_bounce_is_only_recorded(
    client: TestClient,
    engine: Engine,
    sent: Any,
    run_inbound: Callable[[], int],  # type: ignore[type-arg]
) -> None:
    _, first, _ = sent
    assert deliver(client, fixture("dsn_soft_bounce.eml", first)).json()["kind"] == "soft_bounce"
    run_inbound()
    assert one(engine, "SELECT status FROM messages WHERE id = :m", m=first) == "sent"
    assert one(engine, "SELECT count(*) FROM suppressions") == 0
    assert one(engine, "SELECT count(*) FROM message_events") == 0
    assert one(engine, "SELECT outcome FROM inbound_events") == "soft_bounce"


def test_an_out_of_office_is_recorded_but_is_not_a_reply(
    client: TestClient,
    engine: Engine,
    sent: Any,
    run_inbound: Callable[[], int],  # type: ignore[type-arg]
) -> None:
    _, first, queued = sent
    assert deliver(client, fixture("out_of_office.eml", first)).json()["kind"] == "auto_reply"
    run_inbound()
    assert one(engine, "SELECT outcome FROM inbound_events") == "auto_reply"
    assert one(engine, "SELECT count(*) FROM message_events WHERE type = 'replied'") == 0
    assert one(engine, "SELECT status FROM enrollments") == "active"
    assert one(engine, "SELECT status FROM messages WHERE id = :m", m=queued) == "queued"


def test_remove_me_in_an_email_reply_unsubscribes_the_address(
    client: TestClient,
    engine: Engine,
    sent: Any,
    run_inbound: Callable[[], int],  # type: ignore[type-arg]
) -> None:
    _, first, _ = sent
    raw = fixture("reply_thunderbird.eml", first).replace(
        b"Thanks for reaching out. Tuesday at 10:00 works for me \xe2\x80\x93 send an invite.", b"Please remove me."
    )
    deliver(client, raw)
    run_inbound()
    assert rows(engine, "SELECT channel, value, reason FROM suppressions") == [
        ("email", "lead0@example.com", "unsubscribe")
    ]
    assert one(engine, "SELECT count(*) FROM message_events WHERE type = 'unsubscribed'") == 1
    assert one(engine, "SELECT count(*) FROM message_events WHERE type = 'replied'") == 0


@pytest.mark.parametrize(
    "raw",
    [b"", b"this is not an email at all", b"From: x@example.com\x00\x01\x02", "malformed.eml"],
)
def test_malformed_mime_gets_a_400_and_nothing_changes(
    raw: bytes | str,
    client: TestClient,
    engine: Engine,
    sent: Any,
    redis: Redis,  # type: ignore[type-arg]
) -> None:
    _, first, _ = sent
    body = fixture(raw, first) if isinstance(raw, str) else raw
    r = deliver(client, body)
    assert r.status_code == 400
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == "BadRequest"
    assert one(engine, "SELECT count(*) FROM inbound_events") == 0
    assert get_queue(QueueName.INBOUND, redis).count == 0


def test_the_hook_needs_the_shared_secret_or_its_hmac(
    client: TestClient,
    engine: Engine,
    sent: Any,  # type: ignore[type-arg]
) -> None:
    _, first, _ = sent
    raw = fixture("reply_thunderbird.eml", first)
    assert deliver(client, raw, headers={}).status_code == 403
    assert deliver(client, raw, headers={"X-Inbound-Secret": "wrong"}).status_code == 403
    t = int(time.time())
    good = hmac.new(EMAIL_SECRET.encode(), f"{t}.".encode() + raw, hashlib.sha256).hexdigest()
    stale = hmac.new(EMAIL_SECRET.encode(), f"{t - 3600}.".encode() + raw, hashlib.sha256).hexdigest()
    assert deliver(client, raw, headers={"X-Inbound-Signature": f"t={t - 3600},v1={stale}"}).status_code == 403
    assert deliver(client, raw + b"x", headers={"X-Inbound-Signature": f"t={t},v1={good}"}).status_code == 403
    assert one(engine, "SELECT count(*) FROM inbound_events") == 0
    assert deliver(client, raw, headers={"X-Inbound-Signature": f"t={t},v1={good}"}).status_code == 202
    # The same email again is a duplicate.
    assert deliver(client, raw).json()["status"] == "duplicate"
    assert one(engine, "SELECT count(*) FROM inbound_events") == 1


def test_an_email_about_no_message_of_ours_is_ignored(client: TestClient, engine: Engine, sent: Any) -> None:  # type: ignore[type-arg]
    r = deliver(client, fixture("reply_thunderbird.eml", uuid.uuid4()))
    assert r.status_code == 202
    assert r.json()["status"] == "ignored"
    assert one(engine, "SELECT count(*) FROM inbound_events") == 0


def test_a_reply_to_a_follow_up_is_matched_by_the_message_ids_the_ledger_keeps(
    client: TestClient,
    engine: Engine,
    box: SecretBox,
    run_inbound: Callable[[], int],  # type: ignore[type-arg]
) -> None:
    world = create_world(engine, box)
    first_id, follow_up_id = uuid.uuid4(), uuid.uuid4()
    first = add_message(engine, world, step=0, id=first_id, provider_message_id=f"<{first_id}@acme.example>")
    follow_up = add_message(
        engine, world, step=2, id=follow_up_id, provider_message_id=f"<{follow_up_id}@acme.example>"
    )
    ledger = dict(rows(engine, "SELECT id, provider_message_id FROM messages"))
    raw = (
        "From: Lead <lead0@example.com>\r\nTo: sam@acme.example\r\nSubject: Re: Idea\r\n"
        f"Message-ID: <reply-1@example.com>\r\nIn-Reply-To: {ledger[follow_up]}\r\n"
        f"References: {ledger[first]}\r\n {ledger[follow_up]}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\nSounds good, call me Tuesday.\r\n"
    ).encode()
    r = deliver(client, raw)
    assert (r.status_code, r.json()["kind"]) == (202, "reply")
    run_inbound()
    (event,) = rows(engine, "SELECT message_id FROM message_events WHERE type = 'replied'")
    assert event.message_id == follow_up  # the message replied to, not the start of the thread
