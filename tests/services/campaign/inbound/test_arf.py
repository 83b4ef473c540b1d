"""Abuse reports (ARF, RFC 5965) through the inbound mail path: the complainer is suppressed on email."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from litestar.testing import TestClient
from sqlalchemy import Engine

from services.campaign.inbound.email.mail import MailKind, MalformedMail, read
from tests.services.campaign.inbound.factories import one, rows
from tests.services.campaign.inbound.test_email import deliver, sent

__all__ = ["sent"]  # the world with its first email sent, as the DSN tests use it


def arf(message_id: uuid.UUID, *, feedback_type: str = "abuse", original: str = "message/rfc822") -> bytes:
    """A feedback report as a mailbox provider's loop sends it: text, the report, the original message."""
    return f"""From: Complaints <fbl@mailbox.example>
To: fbl@acme.example
Subject: Email Feedback Report for IP 192.0.2.1
Message-ID: <fbl-1@mailbox.example>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="part"

--part
Content-Type: text/plain; charset="US-ASCII"

This is an email abuse report for an email message received from IP 192.0.2.1.

--part
Content-Type: message/feedback-report

Feedback-Type: {feedback_type}
User-Agent: SomeGenerator/1.0
Version: 1
Original-Rcpt-To: <Lead0@Example.com>
Arrival-Date: Thu, 03 Dec 2026 10:00:00 +0000

--part
Content-Type: {original}

From: Sam <sam@acme.example>
To: lead0@example.com
Subject: A question
Message-ID: <{message_id}@acme.example>
X-Tidewater-Message: {message_id}

Hello.
--part--
""".replace("\n", "\r\n").encode()


def test_an_abuse_report_names_our_message_and_the_complainer() -> None:
    message_id = uuid.uuid4()
    for original in ("message/rfc822", "text/rfc822-headers"):
        mail = read(arf(message_id, original=original))
        assert (mail.kind, mail.message_ids, mail.recipient) == (MailKind.COMPLAINT, [message_id], "lead0@example.com")
        assert mail.action == "abuse"
    assert read(arf(message_id, feedback_type="not-spam")).kind is MailKind.UNMATCHED


def test_a_feedback_report_without_its_report_part_is_malformed() -> None:
    raw = arf(uuid.uuid4()).replace(b"Content-Type: message/feedback-report", b"Content-Type: text/plain")
    with pytest.raises(MalformedMail, match="no message/feedback-report part"):
        read(raw)


def test_a_complaint_suppresses_the_complainer_on_email_and_stops_the_sequence(
    client: TestClient,
    engine: Engine,
    sent: Any,
    run_inbound: Callable[[], int],  # type: ignore[type-arg]
) -> None:
    _, first, queued = sent
    r = deliver(client, arf(first))
    assert r.status_code == 202, r.text
    assert r.json()["kind"] == "complaint"
    run_inbound()
    assert rows(engine, "SELECT channel, kind, value, reason FROM suppressions") == [
        ("email", "email", "lead0@example.com", "complaint")
    ]
    assert one(engine, "SELECT status FROM enrollments") == "stopped"
    assert one(engine, "SELECT status FROM messages WHERE id = :m", m=queued) == "skipped"
    event = rows(engine, "SELECT outcome, effective_at FROM inbound_events")[0]
    assert event.outcome == "complaint"
    assert event.effective_at is not None
